"""The refresh on hand-made rollups: what it stores per KPI (value, target, status, CI, sample, source, trend),
the team and portfolio roll-ups, the incident suggestion when a KPI starts missing, and the KPI condition."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.costs.rollups import token_bin
from apps.evals.models import Feedback
from apps.gateway.models import EndUserDaily, LatencyDaily, TokensDaily, TrafficDaily
from apps.notifications.models import Notification
from apps.reviews import conditions
from apps.scorecards import services
from apps.scorecards.models import KpiValue, ScorecardProfile, ScorecardRollup, ScorecardSnapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def traffic(team, key, use_case, yesterday):
    TrafficDaily.objects.create(day=yesterday, team_id=team.pk, gateway_key_id=key.pk, model="m", requests=1000,
                                errors=30, refused=0, input_tokens=400_000, output_tokens=100_000, cost=20)
    LatencyDaily.objects.bulk_create([
        LatencyDaily(day=yesterday, team_id=team.pk, gateway_key_id=key.pk, measure="total", bin=token_bin(900),
                     requests=500),
        LatencyDaily(day=yesterday, team_id=team.pk, gateway_key_id=key.pk, measure="total", bin=token_bin(9000),
                     requests=500)])
    bins = [0] * (token_bin(4000) + 1)
    bins[token_bin(500)], bins[token_bin(4000)] = 900, 100
    TokensDaily.objects.create(day=yesterday, use_case_id=use_case.pk, bins=bins)
    EndUserDaily.objects.bulk_create([EndUserDaily(day=yesterday, gateway_key_id=key.pk, use_case_id=use_case.pk,
                                                   user_hash=f"{i:032x}") for i in range(40)])
    ScorecardProfile.objects.create(use_case=use_case, target_users=100)
    when = timezone.now() - timedelta(days=1)
    Feedback.objects.bulk_create([Feedback(use_case_id=use_case.pk, request_id=f"r{i}", success=i < 60,
                                           overridden=i >= 90, created_at=when) for i in range(100)])


def _values(use_case) -> dict:
    return {v.kpi: v for v in KpiValue.objects.filter(snapshot__use_case=use_case)}


def test_refresh_stores_each_kpi_with_target_status_ci_and_source(use_case, traffic, key):
    assert services.scorecards_refresh() == 1
    values = _values(use_case)
    assert values["task_success"].value == 0.6 and values["task_success"].status == "missed"  # high tier: 0.9
    assert values["task_success"].ci_low < 0.6 < values["task_success"].ci_high
    assert values["override_rate"].value == 0.1 and values["override_rate"].sample == 100
    assert values["availability"].value == 0.97 and values["availability"].status == "missed"
    assert "gateway's daily rollups: no availability SLO" in values["availability"].detail  # its source, said
    assert values["latency_p95"].value > 8000 and values["latency_p95"].status == "missed"  # target 6 s
    assert values["adoption"].value == 0.4
    assert values["cost_per_success"].value == pytest.approx(20 / 60)
    assert 500 / 1.1 < values["tokens_per_request"].value < 500 * 1.1  # the median's bin: ±9 %
    assert 4000 / 1.1 < values["tokens_p95"].value < 4000 * 1.1 and values["tokens_p95"].sample == 1000
    assert values["mttr"].value is None and values["mttr"].status == "no_data" and values["mttr"].detail
    assert f"key={key.pk}" in values["latency_p95"].source_url
    assert len(values["task_success"].trend) == 8 and values["task_success"].trend[-1][1] == 0.6
    snapshot = ScorecardSnapshot.objects.get(use_case=use_case)
    assert snapshot.status == "missed" and snapshot.cells["task_success"] == ["missed", "60.0 %"]


def test_roll_ups_pool_rates_per_team_and_portfolio(use_case, traffic, team):
    services.scorecards_refresh()
    team_rollup = ScorecardRollup.objects.get(scope="team", team_id=team.pk)
    assert team_rollup.use_cases == 1 and team_rollup.kpis["task_success"]["value"] == 0.6
    assert team_rollup.kpis["task_success"]["missed"] == 1
    assert ScorecardRollup.objects.get(scope="portfolio").kpis["availability"]["value"] == 0.97


def test_a_kpi_that_starts_missing_suggests_an_incident_to_the_owner_once(use_case, traffic, pm):
    services.scorecards_refresh()  # first scorecard: nothing was met before, so nothing "started" missing
    assert not Notification.objects.filter(user=pm).exists()
    snapshot = ScorecardSnapshot.objects.get(use_case=use_case)
    snapshot.cells = {**snapshot.cells, "task_success": ["met", "95 %"]}
    snapshot.save()
    services.scorecards_refresh()
    services.scorecards_refresh()
    notes = Notification.objects.filter(user=pm, kind="scorecards.kpi_missed")
    assert notes.count() == 1
    assert "/incidents/new/?" in notes.get().body and "Task+success" in notes.get().body


def test_draft_use_cases_get_no_scorecard(use_case):
    use_case.state = "draft"
    use_case.save()
    assert services.scorecards_refresh() == 0


def test_the_kpi_condition_checks_a_kpi_over_its_own_window(use_case, traffic):
    slow = conditions.evaluate("scorecard_kpi", use_case, {"kpi": "latency_p95", "op": "<", "threshold": 6000,
                                                           "days": 7})
    assert slow.passed is False and slow.value > 6000
    fine = conditions.evaluate("scorecard_kpi", use_case, {"kpi": "latency_p95", "op": "<", "threshold": 20000,
                                                           "days": 7})
    assert fine.passed is True
    none = conditions.evaluate("scorecard_kpi", use_case, {"kpi": "mttr", "op": "<", "threshold": 60, "days": 7})
    assert none.passed is False and "no data" in none.detail
    params = conditions.clean_params("scorecard_kpi", {"kpi": "latency_p95", "op": "<", "threshold": "6000",
                                                       "days": "7"})
    assert params["threshold"] == 6000.0


def test_incident_kpis_agree_with_the_incidents_metrics_and_read_the_reviews_escape_flag(use_case, team):
    from apps.incidents.metrics import incident_metrics
    from apps.incidents.models import PostIncidentReview
    from apps.scorecards import sources
    from apps.scorecards.facts import Window
    from apps.scorecards.kpis import KPIS
    from tests.factories import IncidentFactory

    now = timezone.now()
    detected = now - timedelta(days=2)
    flagged, cleared, unreviewed = [
        IncidentFactory(team=team, severity=2, detected_at=detected, resolved_at=detected + timedelta(minutes=m),
                        prompt_versions=versions)
        for m, versions in ((40, []), (100, ["support/answer@v3"]), (70, ["support/answer@v4"]))]
    for incident in (flagged, cleared, unreviewed):
        incident.use_cases.add(use_case)
    PostIncidentReview.objects.bulk_create([PostIncidentReview(incident=flagged, regression_escape=True),
                                            PostIncidentReview(incident=cleared, regression_escape=False)])
    window = Window.ending(now)
    f = sources.collect([(use_case.pk, team.pk, use_case.tier)], [window])[use_case.pk]
    assert [i.review_escape for i in sorted(f.incidents, key=lambda i: i.incident_id)] == [True, False, None]
    figures = incident_metrics([use_case.pk], since=window.start, until=window.end)
    assert KPIS["mttr"].compute(f, window).value == figures.total.ttr_median == 70
    escapes = KPIS["regression_escapes"].compute(f, window)
    assert figures.regression_escapes == 1  # the reviewed escape; the scorecard adds the unreviewed named version
    assert escapes.detail.startswith("1 incident(s) whose review flags") and "1 without a review" in escapes.detail


def test_adoption_growth_counts_distinct_end_users_of_each_quarter_from_the_end_user_table(use_case, key):
    today = timezone.now().date()
    rows = [EndUserDaily(day=today - timedelta(days=back), gateway_key_id=key.pk, use_case_id=use_case.pk,
                         user_hash=f"{u:032x}")
            for back, users in ((3, range(60)), (50, range(20, 70)), (100, range(40)), (150, range(30, 50)))
            for u in users]  # this quarter: users 0-69 (70); the one before: 0-49 (50)
    EndUserDaily.objects.bulk_create(rows)
    services.scorecards_refresh()
    growth = _values(use_case)["adoption_growth"]
    assert growth.value == pytest.approx(70 / 50 - 1) and growth.status == "met"  # high tier: +15 %
    assert (growth.numerator, growth.denominator) == (20, 50)


def test_availability_is_the_slo_s_sli_when_the_use_case_has_an_availability_slo(use_case, key, traffic, owner):
    from apps.gateway.sli import SliCounts, sli_add_counts
    from apps.slos.evaluation import slos_evaluate
    from apps.slos.models import Slo

    slo = Slo.objects.create(use_case=use_case, team=use_case.team, kind="availability", target_percent="99.5",
                             window_days=28, created_by=owner, updated_by=owner)
    minute = (timezone.now() - timedelta(days=2)).replace(second=0, microsecond=0)
    sli_add_counts({(use_case.pk, minute): SliCounts(requests=400, bad=1, answered=399)})
    slos_evaluate()
    services.scorecards_refresh()
    slo.refresh_from_db()
    availability = _values(use_case)["availability"]
    assert availability.value == pytest.approx(slo.sli_percent / 100) == pytest.approx(399 / 400)  # not 97 %
    assert availability.target == 0.995 and availability.status == "at_risk"  # its 95 % CI crosses 99.5 %
    assert availability.source_url == slo.get_absolute_url() and "SLO's SLI" in availability.detail


def test_live_groundedness_reads_the_linked_collections_answers_and_the_scores_sent_on_feedback(use_case, team):
    from apps.costs.models import UsageEvent
    from apps.llm.models import Model
    from apps.llm.services import catalog_seed_local
    from apps.rag.models import Collection
    from apps.reviews.models import UseCaseCollection
    from apps.scorecards import sources
    from apps.scorecards.facts import Window
    from apps.scorecards.kpis import KPIS
    from tests.factories import FeedbackFactory, UsageEventFactory

    catalog_seed_local()
    linked, other = (Collection.objects.create(team=team, name=name, embedding_dimensions=384,
                                               embedding_model=Model.objects.get(name="local-minilm"))
                     for name in ("Handbook", "Other"))
    UseCaseCollection.objects.create(use_case=use_case, collection=linked)
    at = timezone.now() - timedelta(days=1)
    UsageEvent.objects.bulk_create([UsageEventFactory.build(collection_id=collection.pk, groundedness=score,
                                                            occurred_at=at)
                                    for collection, score in ((linked, 0.5), (linked, 1.0), (other, 0.0),
                                                              (linked, None))])
    FeedbackFactory(use_case_id=use_case.pk, success=None, thumbs="", groundedness=0.9, created_at=at)
    window = Window.ending(timezone.now())
    f = sources.collect([(use_case.pk, team.pk, use_case.tier)], [window])[use_case.pk]
    measure = KPIS["live_groundedness"].compute(f, window)
    assert (measure.sample, measure.value) == (3, pytest.approx(2.4 / 3))
    assert (f.outcome_sum(window)[3]) == 0  # a score sent alone is no feedback outcome
    assert use_case.pk in sources.changed_since([use_case.pk], at - timedelta(minutes=1))
