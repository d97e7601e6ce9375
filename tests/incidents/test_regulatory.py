"""EU AI Act Art. 73: a serious incident affecting EU users of a high-risk use case shows its reporting deadline —
15 days after awareness (Art. 73(2)), 2 days for a widespread infringement or critical infrastructure (Art.
73(3)), 10 days after a death (Art. 73(4)); the shortest applicable wins — and exports its report."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.incidents import regulatory, services
from apps.reviews.models import State, UseCase

AWARE = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize("category, widespread, days, paragraph", [
    ("health", False, 15, "Art. 73(2)"),
    ("fundamental_rights", False, 15, "Art. 73(2)"),
    ("property_environment", False, 15, "Art. 73(2)"),
    ("death", False, 10, "Art. 73(4)"),
    ("critical_infrastructure", False, 2, "Art. 73(3)"),
    ("fundamental_rights", True, 2, "Art. 73(3)"),
    ("death", True, 2, "Art. 73(3)"),  # both apply: the shorter one
])
def test_the_deadline_follows_article_73(category, widespread, days, paragraph):
    deadline = regulatory.reporting_deadline(category=category, widespread_infringement=widespread, aware_at=AWARE)
    assert (deadline.days, deadline.paragraph) == (days, paragraph)
    assert deadline.due_at == AWARE + timedelta(days=days)


def test_an_incident_that_is_not_serious_has_no_deadline():
    assert regulatory.reporting_deadline(category="", widespread_infringement=False, aware_at=AWARE) is None


@pytest.fixture
def high_risk_eu(team):
    return UseCase.objects.create(team=team, title="CV screening assistant", state=State.ACTIVE, tier="high",
                                  purpose="Rank applications", answers={"geographies": ["eu", "uk"],
                                                                        "annex_iii_area": "employment",
                                                                        "ai_act_role": "provider"})


def test_a_serious_incident_of_a_high_risk_eu_use_case_shows_its_deadline(declare, engineer, high_risk_eu):
    incident = declare(use_cases=[high_risk_eu.pk], severity=1)
    status = regulatory.art73_status(incident)
    assert not status.applies and status.suggested_eu_users and status.high_risk == [high_risk_eu]
    regulatory.assessment_save(incident=incident, actor=engineer, eu_users=True, category="health",
                               aware_at=AWARE, member_states="de, fr")
    status = regulatory.art73_status(incident)
    assert status.applies and status.deadline.due_at == AWARE + timedelta(days=15)
    assert status.assessment.member_states == ["DE", "FR"]
    assert AuditEvent.objects.filter(action="incident.art73_assessment", object_id=str(incident.pk)).count() == 1


def test_no_deadline_without_a_high_risk_use_case_or_eu_users(declare, engineer, team, high_risk_eu):
    low = UseCase.objects.create(team=team, title="FAQ bot", state=State.ACTIVE, tier="low", purpose="FAQ")
    incident = declare(use_cases=[low.pk])
    regulatory.assessment_save(incident=incident, actor=engineer, eu_users=True, category="death")
    assert not regulatory.art73_status(incident).applies
    eu_less = declare(use_cases=[high_risk_eu.pk])
    regulatory.assessment_save(incident=eu_less, actor=engineer, eu_users=False, category="death")
    assert not regulatory.art73_status(eu_less).applies


def test_the_assessment_checks_its_input_and_who_may(incident, engineer, viewer):
    with pytest.raises(PermissionDenied):
        regulatory.assessment_save(incident=incident, actor=viewer, category="death")
    with pytest.raises(ValidationError) as caught:
        regulatory.assessment_save(incident=incident, actor=engineer, category="meteor", aware_at="yesterday")
    assert set(caught.value.message_dict) == {"category", "aware_at"}
    assert regulatory.assessment_of(incident) is None


def test_the_report_exports_as_markdown_json_and_a_printable_page(declare, engineer, high_risk_eu, client_for):
    incident = declare(use_cases=[high_risk_eu.pk], summary="Rejected applicants by postcode",
                       affected_groups=["applicants in DE"])
    regulatory.assessment_save(incident=incident, actor=engineer, eu_users=True, category="fundamental_rights",
                               widespread_infringement=True, aware_at=AWARE, member_states=["DE", "AT", "FR"],
                               reporter="Acme GmbH, ai-safety@acme.example", causal_link="The ranking prompt "
                               "used the postcode.")
    services.note_add(incident=incident, actor=engineer, text="Ranking paused.")
    client = client_for(engineer)
    data = json.loads(client.get(reverse("incidents:art73_report", args=[incident.pk, "json"])).content)
    assert data["deadline"]["article"] == "Art. 73(3)" and data["incident"]["member_states"] == ["DE", "AT", "FR"]
    assert data["reporter"]["organisation_and_contact"] == "Acme GmbH, ai-safety@acme.example"
    assert data["ai_system"]["use_cases"][0]["annex_iii_area"] == "employment"
    assert data["report"]["kind"] == "initial" and [e["text"] for e in data["timeline"]][-1] == "Ranking paused."
    markdown = client.get(reverse("incidents:art73_report", args=[incident.pk, "md"]))
    assert markdown["Content-Disposition"].endswith('-art73.md"')
    assert b"Art. 73(3)" in markdown.content and b"The ranking prompt used the postcode." in markdown.content
    page = client.get(reverse("incidents:art73_report", args=[incident.pk, "html"]))
    assert page.status_code == 200 and b"Acme GmbH" in page.content
    detail = client.get(reverse("incidents:detail", args=[incident.pk]))
    assert b"Report due 2026-11-04 09:30" in detail.content
