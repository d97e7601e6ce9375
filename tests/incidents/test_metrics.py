"""Incident figures on hand-made data: time to mitigate and to resolve (medians, by severity, team, use case and
month), regression escapes against production promotions, and the selector the scorecards read."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from apps.incidents.metrics import incident_metrics, metrics_for
from apps.incidents.models import Incident, PostIncidentReview
from apps.prompts.models import LabelEvent, Prompt, PromptVersion
from apps.reviews.models import State, UseCase, UseCasePrompt
from tests.factories import IncidentFactory

T0 = datetime(2026, 10, 5, 12, 0, tzinfo=UTC)
SINCE, UNTIL = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)


def _at(minutes):
    return None if minutes is None else T0 + timedelta(minutes=minutes)


@pytest.fixture
def data(team, other_team):
    """Five incidents in the window (minutes from detection to mitigated / resolved) and one before it.

        A Sev1 support  30 /  90          D Sev2 support   — /  60
        B Sev1 support  50 / 130          E Sev3 support   — /  —   (open; November)
        C Sev2 search  100 / 200, caused by a release (regression escape)
        F Sev1 support, detected in September: outside the window
    """
    use_case = UseCase.objects.create(team=team, title="Refund helper", state=State.ACTIVE, purpose="Refunds")
    rows = {
        "A": (1, team, 30, 90, T0), "B": (1, team, 50, 130, T0 + timedelta(days=1)),
        "C": (2, other_team, 100, 200, T0), "D": (2, team, None, 60, T0),
        "E": (3, team, None, None, T0 + timedelta(days=31)), "F": (1, team, 5, 10, T0 - timedelta(days=30)),
    }
    made = {}
    for name, (severity, owner, mitigated, resolved, detected) in rows.items():
        shift = detected - T0
        made[name] = IncidentFactory(title=name, severity=severity, team=owner, detected_at=detected,
                                     mitigated_at=_at(mitigated) and _at(mitigated) + shift,
                                     resolved_at=_at(resolved) and _at(resolved) + shift)
    for name in ("A", "C"):
        made[name].use_cases.add(use_case)
    PostIncidentReview.objects.create(incident=made["C"], regression_escape=True, release_kind="prompt_version",
                                      release_ref="support/refunds@v2")
    prompt = Prompt.objects.create(team=team, name="support/refunds")
    UseCasePrompt.objects.create(use_case=use_case, prompt=prompt)
    versions = [PromptVersion.objects.create(prompt=prompt, number=n, template=f"v{n}", content_hash=f"h{n}")
                for n in (1, 2, 3)]
    for version, at in zip(versions, (T0 - timedelta(days=60), T0 - timedelta(days=1), T0 + timedelta(days=3)),
                           strict=True):
        LabelEvent.objects.create(prompt=prompt, label="production", to_version=version, actor_label="t",
                                  occurred_at=at)
    LabelEvent.objects.create(prompt=prompt, label="staging", to_version=versions[2], actor_label="t",
                              occurred_at=T0)
    return {"incidents": made, "use_case": use_case}


def test_mttr_and_time_to_mitigate_by_severity_team_and_month(data):
    m = incident_metrics(since=SINCE, until=UNTIL)
    assert m.total.count == 5
    assert m.total.ttm_median == 50.0  # 30, 50, 100
    assert m.total.ttr_median == 110.0  # 60, 90, 130, 200
    assert (m.by_severity[1].ttm_median, m.by_severity[1].ttr_median) == (40.0, 110.0)
    assert (m.by_severity[2].ttm_median, m.by_severity[2].ttr_median) == (100.0, 130.0)
    assert m.by_severity[3].ttr_median is None  # still open: not counted yet
    assert (m.by_team["Search"].count, m.by_team["Support AI"].count) == (1, 4)
    assert list(m.by_month) == ["2026-10", "2026-11"] and m.by_month["2026-10"].count == 4
    assert m.severity_by_month["2026-10"] == {1: 2, 2: 2}


def test_regression_escapes_against_production_promotions(data):
    m = incident_metrics(since=SINCE, until=UNTIL)
    assert (m.regression_escapes, m.production_promotions, m.escape_rate) == (1, 2, 0.5)  # Oct 4 and Oct 8
    everything = incident_metrics()
    assert everything.total.count == 6 and everything.production_promotions == 3
    assert everything.escape_rate == round(1 / 3, 4)


def test_the_selector_for_a_use_case(data):
    m = incident_metrics(use_case_ids=[data["use_case"].pk], since=SINCE, until=UNTIL)
    assert m.total.count == 2 and m.total.ttr_median == 145.0  # A 90, C 200
    assert m.as_dict()["by_severity"]["sev2"]["resolve_median_minutes"] == 200.0
    assert m.by_use_case["Refund helper"].count == 2
    assert incident_metrics(use_case_ids=[], since=SINCE).total.count == 0


def test_the_metrics_page_shows_what_the_reader_may_see(data, engineer, outsider, client_for):
    assert metrics_for(actor=engineer, since=SINCE, until=UNTIL).total.count == 4  # Support AI's only
    assert metrics_for(actor=outsider, since=SINCE, until=UNTIL).total.count == 1
    page = client_for(engineer).get(reverse("incidents:metrics"), {"since": "2026-10-01", "until": "2026-12-01"})
    assert page.status_code == 200 and page.context["m"].total.count == 4
    assert set(page.context["charts"]) == {"mttr", "counts", "escapes"}
    bad = client_for(engineer).get(reverse("incidents:metrics"), {"since": "2026-12-01", "until": "2026-10-01"})
    assert bad.status_code == 200 and "“From” is before “Until”." in bad.content.decode()
    assert Incident.objects.count() == 6
