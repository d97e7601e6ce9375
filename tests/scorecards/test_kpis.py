"""Each KPI of the table on hand-made facts (no database): the expected value, the no-data case with what would
feed it, and the status edges (met / at risk / missed, CI crossing, change-mode)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.costs.rollups import token_bin
from apps.evals.stats import wilson_interval
from apps.incidents.metrics import Durations
from apps.scorecards.facts import (
    EvalRunFact,
    IncidentFact,
    RetrievalFact,
    SloFact,
    UseCaseFacts,
    Window,
    trend_windows,
)
from apps.scorecards.kpis import AT_RISK_MARGIN, KPIS, Measure, default_target, display, status_of, target_for

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
WINDOW = Window.ending(NOW)
DAY = NOW.date() - timedelta(days=1)


def facts(**kw) -> UseCaseFacts:
    return UseCaseFacts(use_case_id=1, team_id=1, tier="high", **kw)


def value(key, f, window=WINDOW):
    return KPIS[key].compute(f, window)


def test_every_kpi_without_data_says_so_and_what_would_feed_it():
    empty = facts()
    for key, kpi in KPIS.items():
        measure = kpi.compute(empty, WINDOW)
        assert measure.value is None, key
        assert measure.detail, key
        assert status_of(kpi, measure, default_target(kpi, "high")) == "no_data"


def test_task_success_override_and_cost_per_success_come_from_outcomes_and_traffic():
    f = facts(outcomes={DAY: [80, 20, 5, 110]}, traffic={DAY: [1000, 10, 0, 50_000, 20_000, 12.5, 0]})
    success = value("task_success", f)
    interval = wilson_interval(80, 100)
    assert (success.value, success.sample, success.ci) == (0.8, 100, (interval.low, interval.high))
    assert value("override_rate", f).value == pytest.approx(5 / 110)
    assert value("cost_per_success", f).value == pytest.approx(12.5 / 80)
    assert value("tokens_per_request", f).value is None  # no token histogram yet: the mean is only told
    assert "70 tokens" in value("tokens_per_request", f).detail
    assert "POST /api/v1/feedback" in value("task_success", facts()).detail


def test_outcomes_outside_the_window_do_not_count():
    old = WINDOW.start.date() - timedelta(days=1)
    f = facts(outcomes={old: [10, 0, 0, 10], DAY: [1, 1, 0, 2]})
    assert value("task_success", f).value == 0.5


def test_availability_ignores_refusals_and_safety_is_a_share_of_calls():
    f = facts(traffic={DAY: [1000, 4, 100, 0, 0, 0.0, 0]}, safety={DAY: 9})
    assert value("availability", f).value == pytest.approx(896 / 900)
    assert value("safety_violations", f).value == pytest.approx(9 / 1000)


def test_latency_percentiles_come_from_the_summed_bins():
    bins = {token_bin(1000): 50, token_bin(8000): 50}
    f = facts(latency={DAY: bins})
    p50, p95 = value("latency_p50", f).value, value("latency_p95", f).value
    assert 1000 * 0.9 <= p50 <= 1000 * 1.2
    assert 8000 * 0.9 <= p95 <= 8000 * 1.2
    assert value("latency_p95", f).sample == 100


def test_adoption_needs_target_users_and_end_users():
    f = facts(active_users={WINDOW.key: 300})
    assert "target users" in value("adoption", f).detail.lower()
    f.target_users = 1000
    assert value("adoption", f).value == 0.3
    assert value("adoption", facts(target_users=10)).value is None


def test_eval_kpis_read_the_latest_run_of_the_production_version():
    older = EvalRunFact(1, NOW - timedelta(days=9), [{"name": "grounded", "kind": "groundedness", "scored": 10,
                                                      "passed": 5}])
    latest = EvalRunFact(2, NOW - timedelta(days=1), [
        {"name": "grounded", "kind": "groundedness", "scored": 20, "passed": 19},
        {"name": "hallucination judge", "kind": "llm_judge", "scored": 50, "passed": 48}])
    f = facts(eval_runs=[older, latest])
    assert value("groundedness", f).value == 19 / 20
    assert value("hallucination", f).value == 2 / 50
    assert value("groundedness", f, Window.ending(NOW - timedelta(days=5))).value == 0.5  # the trend's past
    no_judge = facts(eval_runs=[older])  # falls back to the groundedness evaluator's unsupported answers
    assert value("hallucination", no_judge).value == 0.5 and "no evaluator named" in value("hallucination",
                                                                                          no_judge).detail
    nothing = facts(eval_runs=[EvalRunFact(3, NOW - timedelta(days=1), [])])
    assert value("hallucination", nothing).value is None


def test_eval_coverage_counts_gated_production_prompts_with_a_run():
    f = facts(production_prompts=[1, 2, 3, 4], gated_prompts={1, 2, 3},
              evaluated_prompts={1: [NOW - timedelta(days=2)], 2: [NOW - timedelta(days=2)]})
    assert value("eval_coverage", f).value == 0.5


def test_rag_kpis_freshness_of_the_stalest_collection_and_worst_recall():
    f = facts(collection_ids=[1, 2], indexed={1: [NOW - timedelta(hours=5)], 2: [NOW - timedelta(hours=30)]},
              retrieval_runs=[RetrievalFact(1, 1, NOW - timedelta(days=1), 0.9, 40.0),
                              RetrievalFact(2, 2, NOW - timedelta(days=1), 0.6, 55.0)])
    assert value("index_freshness", f).value == pytest.approx(30)
    recall = value("retrieval_recall", f)
    assert recall.value == 0.6 and "55 ms" in recall.detail
    assert value("index_freshness", facts(collection_ids=[3])).value is None


def test_mttr_is_the_incidents_median_detection_to_resolution_of_sev1_and_sev2_detected_in_the_window():
    detected = NOW - timedelta(days=3)
    incidents = [IncidentFact(1, 2, detected, detected + timedelta(minutes=20), detected + timedelta(minutes=90), []),
                 IncidentFact(2, 1, detected, None, detected + timedelta(minutes=30), []),
                 IncidentFact(3, 2, detected, detected + timedelta(minutes=5), None, []),  # open: not yet
                 IncidentFact(4, 3, detected, None, detected + timedelta(minutes=600), []),  # Sev3: not in MTTR
                 IncidentFact(5, 1, NOW - timedelta(days=40), None, NOW - timedelta(days=3), [])]  # detected before
    mttr = value("mttr", facts(incidents=incidents))
    assert (mttr.value, mttr.sample) == (60, 2)  # median of 90 and 30
    by_incidents = Durations()  # the incidents app's arithmetic on the same two incidents gives the same figure
    for i in incidents[:2]:
        by_incidents.add_times(i.detected_at, i.mitigated_at, i.resolved_at)
    assert by_incidents.ttr_median == mttr.value
    assert value("mttr", facts(incidents=incidents[2:4])).value is None


def test_regression_escapes_follow_the_review_flag_and_fall_back_to_a_named_version_without_a_review():
    detected = NOW - timedelta(days=3)
    incidents = [IncidentFact(1, 2, detected, None, None, ["support/answer@v3"], review_escape=False),  # review: no
                 IncidentFact(2, 2, detected, None, None, [], review_escape=True),  # review: a release caused it
                 IncidentFact(3, 2, detected, None, None, ["support/answer@v4"]),  # no review: the version counts
                 IncidentFact(4, 2, detected, None, None, [])]  # no review, no version
    f = facts(incidents=incidents, promotions=[NOW - timedelta(days=d) for d in (10, 8, 6, 4)])
    escapes = value("regression_escapes", f)
    assert (escapes.value, escapes.sample) == (0.5, 4)
    assert "1 incident(s) whose review flags" in escapes.detail and "1 without a review" in escapes.detail
    assert value("regression_escapes", facts()).value is None


@pytest.mark.parametrize(("measured", "expected"), [
    (0.995, "met"), (0.99, "at_risk"), (0.9, "at_risk"), (0.899, "missed"),
])
def test_status_edges_of_a_higher_is_better_kpi(measured, expected):
    assert status_of(KPIS["groundedness"], Measure(measured), 0.9) == expected  # at risk: within 10 % of 0.9


def test_status_met_at_risk_and_missed_at_the_margin():
    kpi = KPIS["latency_p95"]  # lower is better, target 6000 ms
    assert status_of(kpi, Measure(5000), 6000) == "met"
    assert status_of(kpi, Measure(6000 * (1 - AT_RISK_MARGIN)), 6000) == "at_risk"
    assert status_of(kpi, Measure(6000), 6000) == "at_risk"
    assert status_of(kpi, Measure(6001), 6000) == "missed"
    assert status_of(kpi, Measure(5000), None) == "no_target"


def test_a_rate_whose_interval_crosses_the_target_is_at_risk():
    kpi = KPIS["task_success"]
    sure = wilson_interval(950, 1000)
    unsure = wilson_interval(19, 20)
    assert status_of(kpi, Measure(0.95, ci=(sure.low, sure.high)), 0.8) == "met"
    assert status_of(kpi, Measure(0.95, ci=(unsure.low, unsure.high)), 0.8) == "at_risk"


def test_change_mode_compares_with_the_previous_window():
    kpi = KPIS["cost_per_success"]  # target: rise at most 5 %
    assert status_of(kpi, Measure(1.20), 0.05, previous=1.0) == "missed"
    assert status_of(kpi, Measure(1.04), 0.05, previous=1.0) == "at_risk"
    assert status_of(kpi, Measure(0.90), 0.05, previous=1.0) == "met"
    assert status_of(kpi, Measure(0.90), 0.05, previous=None) == "no_target"


def test_targets_default_by_tier_and_values_display_in_their_unit():
    assert default_target(KPIS["latency_p95"], "high") < default_target(KPIS["latency_p95"], "low")
    assert default_target(KPIS["availability"], "high") > default_target(KPIS["availability"], "low")
    assert display(KPIS["latency_p95"], 6500) == "6.50 s"
    assert display(KPIS["task_success"], 0.8) == "80.0 %"
    assert display(KPIS["mttr"], None) == "—"


def test_the_trend_is_eight_weekly_windows_ending_now():
    windows = trend_windows(NOW)
    assert len(windows) == 8 and windows[-1] == WINDOW
    assert windows[-5].end == WINDOW.start  # the previous window is one of them


def test_rate_of_experimentation_counts_first_starts_in_the_quarter_to_the_window_end_and_a_zero_is_measured():
    starts = [NOW - timedelta(days=100), NOW - timedelta(days=60), NOW - timedelta(days=3), NOW + timedelta(hours=1)]
    measure = value("experimentation", facts(prompt_ids=[7], experiment_starts=starts))
    assert measure.value == 2  # 100 days ago is outside the 91 days; after the window's end does not count
    assert status_of(KPIS["experimentation"], measure, default_target(KPIS["experimentation"], "high")) == "met"

    none_tried = value("experimentation", facts(prompt_ids=[7]))
    assert none_tried.value == 0
    assert status_of(KPIS["experimentation"], none_tried, 1) == "missed"

    assert value("experimentation", facts(experiment_starts=starts)).value is None  # no prompt: nothing to split


def test_tokens_per_request_are_the_median_and_p95_of_the_summed_token_bins():
    f = facts(tokens={DAY: {token_bin(300): 60}, DAY - timedelta(days=1): {token_bin(300): 30, token_bin(20_000): 10}})
    median, p95 = value("tokens_per_request", f), value("tokens_p95", f)
    assert 300 / 1.1 < median.value < 300 * 1.1 and median.sample == 100
    assert 20_000 / 1.1 < p95.value < 20_000 * 1.1  # the mean (≈ 2,270) would have hidden both
    assert KPIS["tokens_p95"].mode == KPIS["tokens_per_request"].mode == "change"  # stable or falling


def test_adoption_growth_compares_the_active_users_of_the_quarter_with_the_quarter_before():
    f = facts(quarter_users={WINDOW.last_day: (130, 100)})
    growth = value("adoption_growth", f)
    assert growth.value == pytest.approx(0.3) and (growth.numerator, growth.denominator) == (30, 100)
    assert display(KPIS["adoption_growth"], growth.value) == "+30.0 %"
    targets = [default_target(KPIS["adoption_growth"], tier) for tier in ("low", "elevated", "high")]
    assert all(0.15 <= t <= 0.3 for t in targets) and targets == sorted(targets, reverse=True)
    assert status_of(KPIS["adoption_growth"], value("adoption_growth", facts(quarter_users={WINDOW.last_day: (90, 100)})),
                     targets[0]) == "missed"
    first_quarter = value("adoption_growth", facts(quarter_users={WINDOW.last_day: (50, 0)}))
    assert first_quarter.value is None and "none in the 13 before" in first_quarter.detail
    assert "user` field" in value("adoption_growth", facts()).detail


SLO = SloFact(slo_id=3, target=0.995, window_days=28, valid=2000, bad=4, evaluated_at=NOW, url="/slos/use-cases/1/")


def test_availability_with_an_slo_is_its_sli_and_its_target_unless_the_owner_set_one():
    f = facts(traffic={DAY: [1000, 50, 0, 0, 0, 0.0, 0]}, availability_slo=SLO, as_of=NOW,
              sli={DAY - timedelta(days=10): [900, 9], DAY - timedelta(days=40): [100, 100]})
    current = value("availability", f)
    assert (current.value, current.sample) == (1996 / 2000, 2000)  # the SLO's own evaluation, not the rollups
    assert "SLO's SLI over its 28-day window" in current.detail
    past = value("availability", f, Window.ending(NOW - timedelta(days=7)))  # the trend: the SLI's counts
    assert past.value == pytest.approx(891 / 900)
    assert target_for(KPIS["availability"], f, {}) == 0.995
    assert target_for(KPIS["availability"], f, {"availability": 0.999}) == 0.999


def test_availability_without_an_slo_says_it_comes_from_the_gateway_rollups():
    f = facts(traffic={DAY: [1000, 10, 0, 0, 0, 0.0, 0]})
    assert value("availability", f).value == 0.99 and "daily rollups" in value("availability", f).detail
    assert target_for(KPIS["availability"], f, {}) == default_target(KPIS["availability"], "high")


def test_availability_over_another_span_than_the_slo_reads_the_same_counts_and_says_so():
    f = facts(availability_slo=SLO, as_of=NOW, sli={DAY: [100, 1]})
    seven = value("availability", f, Window.ending(NOW, 7))
    assert seven.value == 0.99 and "the SLO itself reads 28 days" in seven.detail


def test_live_groundedness_is_the_mean_of_the_windows_scored_answers():
    old = WINDOW.start.date() - timedelta(days=1)
    measure = value("live_groundedness", facts(live_groundedness={DAY: [4, 3.0], old: [10, 1.0]}))
    assert (measure.value, measure.sample) == (0.75, 4)
    assert status_of(KPIS["live_groundedness"], measure, default_target(KPIS["live_groundedness"], "high")) == "missed"
    assert "POST /api/v1/feedback" in value("live_groundedness", facts()).detail
