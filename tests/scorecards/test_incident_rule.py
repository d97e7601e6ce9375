"""A missed KPI target can suggest an incident by rule: the incidents' `kpi_missed` signal, answered by scorecards
through the registry (incidents sits below scorecards)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.incidents.detection import rules_evaluate
from apps.incidents.models import DetectionRule, IncidentSuggestion, Signal
from apps.notifications.models import Notification
from apps.scorecards.models import ScorecardSnapshot, Status

pytestmark = pytest.mark.django_db


def _scorecard(use_case, **cells) -> ScorecardSnapshot:
    missed = sum(1 for status, _ in cells.values() if status == Status.MISSED)
    return ScorecardSnapshot.objects.create(use_case=use_case, team_id=use_case.team_id, tier=use_case.tier,
                                            missed=missed, met=len(cells) - missed, cells=cells,
                                            status=Status.MISSED if missed else Status.MET)


def _rule(threshold=1, team=None) -> DetectionRule:
    return DetectionRule.objects.create(name="KPIs missed", signal=Signal.KPI_MISSED, threshold=threshold,
                                        window_minutes=60, team=team)


def test_a_use_case_missing_a_kpi_target_is_suggested_to_its_team_with_the_use_case_prefilled(use_case, engineer):
    _scorecard(use_case, latency_p95=[Status.MISSED, "9.1 s"], availability=[Status.MET, "99.9 %"])
    _rule()

    assert rules_evaluate().suggested == 1

    suggestion = IncidentSuggestion.objects.get()
    assert suggestion.team_id == use_case.team_id
    assert suggestion.title == "Refund assistant: 1 KPI missing its target"
    assert "Latency P95 (9.1 s)" in suggestion.detail and "Availability" not in suggestion.detail
    assert suggestion.values["use_cases"] == [use_case.pk] and suggestion.values["kind"] == "other"
    assert Notification.objects.filter(user=engineer, kind="incident.suggestion").exists()


def test_the_next_evaluation_folds_into_the_pending_suggestion(use_case):
    _scorecard(use_case, latency_p95=[Status.MISSED, "9.1 s"])
    _rule()
    rules_evaluate()

    assert rules_evaluate().folded == 1
    assert IncidentSuggestion.objects.get().seen == 2


def test_met_kpis_too_few_misses_and_other_teams_stay_quiet(use_case, other_team):
    _scorecard(use_case, latency_p95=[Status.MISSED, "9.1 s"], availability=[Status.AT_RISK, "99.4 %"])
    _rule(threshold=2)  # two KPIs must miss; one does
    _rule(team=other_team)  # only the other team's use cases

    result = rules_evaluate()

    assert (result.suggested, result.opened, result.folded) == (0, 0, 0)
    assert not IncidentSuggestion.objects.exists()


def test_a_rule_asks_for_at_least_one_missed_kpi():
    with pytest.raises(ValidationError) as raised:
        DetectionRule(name="x", signal=Signal.KPI_MISSED, threshold=0.5, window_minutes=60).full_clean()
    assert "threshold" in raised.value.message_dict
