"""The task-success-drop rule on live feedback: a real drop against the use case's 7-day baseline suggests an
incident of incorrect outputs and tells the team; noise and small samples stay quiet; the same drop again folds
into the suggestion. The beat reads folded counts, never the raw feedback twice."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.evals.models import Feedback
from apps.incidents import detection, live_quality
from apps.incidents.models import DetectionRule, FeedbackCount, IncidentSuggestion, Signal
from apps.notifications.models import Notification
from apps.reviews.models import UseCase
from tests.factories import FeedbackFactory

NOW = timezone.now()


def _use_case(team, owner, title):
    return UseCase.objects.create(team=team, title=title, purpose="Answers refund questions", business_owner=owner)


def _feedback(use_case, *, good, bad, hours_ago=0.0, minutes_ago=0.0):
    """`good` + `bad` feedbacks on the use case's calls, spread over the ten minutes before the given time."""
    at = NOW - timedelta(hours=hours_ago, minutes=minutes_ago)
    rows = [FeedbackFactory.build(team_id=use_case.team_id, use_case_id=use_case.pk, success=i < good,
                                  thumbs="up" if i < good else "down",
                                  created_at=at - timedelta(seconds=600 * i / (good + bad)))
            for i in range(good + bad)]
    Feedback.objects.bulk_create(rows)


def _rule(**extra):
    values = {"name": "Task success drop", "signal": Signal.TASK_SUCCESS_DROP, "threshold": 0.1,
              "min_requests": 30, "window_minutes": 60} | extra
    return DetectionRule.objects.create(**values)


def test_the_two_proportion_test_separates_a_drop_from_noise():
    assert live_quality.is_drop(900, 1000, 30, 60, min_total=30, min_drop=0.1)  # 90 % → 50 %
    assert not live_quality.is_drop(880, 1000, 51, 60, min_total=30, min_drop=0.1)  # 88 % → 85 %: noise
    assert not live_quality.is_drop(900, 1000, 6, 10, min_total=30, min_drop=0.1)  # 60 % of 10: too few
    assert not live_quality.is_drop(900, 1000, 52, 60, min_total=30, min_drop=0.1)  # 87 %: under the least drop
    assert not live_quality.is_drop(20, 25, 30, 60, min_total=30, min_drop=0.1)  # the baseline is too small
    assert live_quality.drop_test(500, 1000, 40, 60) == (0.0, 1.0)  # better than before: no drop


def test_a_rule_names_a_drop_between_0_and_1_and_a_window_the_counts_cover():
    rule = DetectionRule(name="drop", signal=Signal.TASK_SUCCESS_DROP, threshold=10, window_minutes=5000)
    with pytest.raises(ValidationError) as refused:
        rule.clean()
    assert set(refused.value.message_dict) == {"threshold", "window_minutes"}
    DetectionRule(name="drop", signal=Signal.TASK_SUCCESS_DROP, threshold=0.1, window_minutes=60).clean()


def test_a_real_drop_suggests_an_incident_and_repeats_fold(team, owner, engineer):
    rule = _rule()
    dropping, noisy, small, quiet_before = (_use_case(team, owner, t) for t in
                                            ("Refund helper", "FAQ bot", "Tiny bot", "New bot"))
    for use_case, recent in ((dropping, (30, 30)), (noisy, (52, 8)), (small, (2, 8)), (quiet_before, (10, 40))):
        if use_case is not quiet_before:  # the new bot has no baseline at all
            for day in range(1, 4):
                _feedback(use_case, good=45, bad=5, hours_ago=24 * day)
        _feedback(use_case, good=recent[0], bad=recent[1], minutes_ago=5)

    result = detection.rules_evaluate(NOW)

    suggestion = IncidentSuggestion.objects.get()
    assert (result.suggested, suggestion.team_id) == (1, team.pk)
    assert suggestion.fingerprint == detection.fingerprint(
        rule, detection.Finding(team.pk, f"use_case:{dropping.pk}", "", ""))
    assert suggestion.values["kind"] == "incorrect_outputs" and suggestion.values["use_cases"] == [dropping.pk]
    assert "30 of 60" in suggestion.detail and "135 of 150" in suggestion.detail
    assert Notification.objects.filter(user=engineer, kind="incident.suggestion").count() == 1

    again = detection.rules_evaluate(NOW + timedelta(seconds=30))
    assert (again.suggested, again.folded) == (0, 1)
    suggestion.refresh_from_db()
    assert suggestion.seen == 2 and IncidentSuggestion.objects.count() == 1
    assert Notification.objects.filter(user=engineer, kind="incident.suggestion").count() == 1


def test_opening_the_suggestion_links_the_use_case(team, owner, engineer):
    _rule()
    use_case = _use_case(team, owner, "Refund helper")
    for day in range(1, 4):
        _feedback(use_case, good=45, bad=5, hours_ago=24 * day)
    _feedback(use_case, good=20, bad=30, minutes_ago=5)
    detection.rules_evaluate(NOW)
    incident = detection.suggestion_open(suggestion=IncidentSuggestion.objects.get(), actor=engineer)
    assert incident.kind == "incorrect_outputs" and list(incident.use_cases.all()) == [use_case]


def test_the_fold_reads_each_feedback_once_and_leaves_the_youngest_for_the_next_tick(team, owner):
    use_case = _use_case(team, owner, "Refund helper")
    _feedback(use_case, good=3, bad=1, minutes_ago=20)
    earlier = NOW - timedelta(minutes=1)
    FeedbackFactory(use_case_id=use_case.pk, success=None, thumbs="", created_at=earlier)  # no outcome: not counted
    FeedbackFactory(success=False, thumbs="down", created_at=earlier)  # no use case: not counted
    assert live_quality.feedback_fold(NOW + timedelta(seconds=10)) == 6
    assert live_quality.feedback_fold(NOW + timedelta(seconds=10)) == 0  # nothing new: the counts stay
    FeedbackFactory(use_case_id=use_case.pk, success=False, thumbs="down", created_at=NOW)
    assert live_quality.feedback_fold(NOW + timedelta(seconds=1)) == 0  # too young: the next tick takes it
    assert live_quality.feedback_fold(NOW + timedelta(seconds=10)) == 1
    for span in live_quality.SPANS:
        rows = FeedbackCount.objects.filter(span_minutes=span, use_case_id=use_case.pk)
        assert (sum(r.good for r in rows), sum(r.total for r in rows)) == (3, 5)
