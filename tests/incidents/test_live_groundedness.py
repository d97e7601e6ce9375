"""The groundedness-drop rule on live answers (ADR 0121): the RAG answers' scores on the usage ledger and the
products' scores on their feedback are folded per use case; a real drop of the mean against the use case's 7-day
baseline suggests an incident of incorrect outputs; noise and small samples stay quiet; the same drop again folds
into the suggestion, and into the incident once it is open."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from scipy import stats

from apps.costs.models import UsageEvent
from apps.incidents import detection, live_quality
from apps.incidents.live_quality import Moments
from apps.incidents.models import DetectionRule, GroundednessCount, IncidentSuggestion, Signal
from apps.llm.models import Model
from apps.llm.services import catalog_seed_local
from apps.rag.services import collection_create
from apps.reviews.models import UseCase, UseCaseCollection
from tests.factories import FeedbackFactory, UsageEventFactory

NOW = timezone.now()


@pytest.fixture
def collection(team, owner, db):
    catalog_seed_local()
    return collection_create(team=team, name="Handbook", embedding_model=Model.objects.get(name="local-minilm"),
                             user=owner)


def _use_case(team, owner, title):
    return UseCase.objects.create(team=team, title=title, purpose="Answers from the handbook", business_owner=owner)


def _moments(scores):
    return Moments(len(scores), sum(scores), sum(s * s for s in scores))


def _counts(use_case, scores, *, span, at):
    """One folded bucket of `scores` for the use case, as the beat would have written it."""
    m = _moments(scores)
    return GroundednessCount(use_case_id=use_case.pk, span_minutes=span, start=live_quality.bucket_start(at, span),
                             answers=m.n, total=m.total, total_sq=m.total_sq)


def _history(use_case, *, recent, baseline=(0.9, 1.0, 0.8, 1.0, 0.9) * 10):
    """Three days of hourly baseline (50 answers an hour, mean 0.92) and the given scores in the last 10 minutes."""
    rows = [_counts(use_case, list(baseline), span=60, at=NOW - timedelta(hours=h)) for h in range(3, 75)]
    rows.append(_counts(use_case, list(recent), span=5, at=NOW - timedelta(minutes=10)))
    GroundednessCount.objects.bulk_create(rows)


def _rule(**extra):
    values = {"name": "Groundedness drop", "signal": Signal.GROUNDEDNESS_DROP, "threshold": 0.1,
              "min_requests": 30, "window_minutes": 60} | extra
    return DetectionRule.objects.create(**values)


def test_welchs_test_separates_a_drop_of_the_mean_from_noise():
    base = _moments([0.9, 1.0, 0.8, 1.0, 0.9] * 200)
    assert live_quality.is_mean_drop(base, _moments([0.5, 0.7, 0.6, 0.9] * 10), min_total=30, min_drop=0.1)
    assert not live_quality.is_mean_drop(base, _moments([0.9, 1.0, 0.7, 0.9] * 10), min_total=30,
                                         min_drop=0.1)  # 0.875 against 0.92: under the least drop
    assert not live_quality.is_mean_drop(base, _moments([0.2, 0.5, 0.4] * 3), min_total=30, min_drop=0.1)  # too few
    assert not live_quality.is_mean_drop(_moments([0.9, 0.5] * 10), _moments([0.1, 0.9] * 20), min_total=30,
                                         min_drop=0.1)  # the baseline is too small
    noisy = _moments([1.0, 0.0, 0.0, 1.0, 0.0] * 6)  # 0.4 against 0.5, but all or nothing over 30: p ≈ 0.2
    assert not live_quality.is_mean_drop(_moments([1.0, 0.0] * 20), noisy, min_total=30, min_drop=0.05)
    assert live_quality.mean_drop_test(_moments([0.5] * 40), _moments([0.9] * 40)) == (0.0, 0.0, 1.0)  # a rise


def test_the_p_value_is_welchs_one_sided_t_test():
    base, recent = [0.9, 1.0, 0.8, 1.0, 0.6, 0.95] * 7, [0.7, 0.9, 0.5, 1.0, 0.6] * 6
    t, df, p = live_quality.mean_drop_test(_moments(base), _moments(recent))
    reference = stats.ttest_ind(base, recent, equal_var=False, alternative="greater")
    assert t == pytest.approx(reference.statistic, rel=1e-9) and p == pytest.approx(reference.pvalue, rel=1e-6)
    assert df == pytest.approx(reference.df, rel=1e-9)
    for t_value, dof in ((0.3, 3.0), (2.5, 17.5), (6.0, 900.0)):
        assert live_quality.t_sf(t_value, dof) == pytest.approx(stats.t.sf(t_value, dof), rel=1e-7)


def test_a_groundedness_rule_names_a_drop_between_0_and_1_and_a_window_the_counts_cover():
    rule = DetectionRule(name="drop", signal=Signal.GROUNDEDNESS_DROP, threshold=10, window_minutes=5000)
    with pytest.raises(ValidationError) as refused:
        rule.clean()
    assert set(refused.value.message_dict) == {"threshold", "window_minutes"}
    DetectionRule(name="drop", signal=Signal.GROUNDEDNESS_DROP, threshold=0.1, window_minutes=60).clean()


def test_a_real_drop_suggests_an_incident_noise_and_small_samples_stay_quiet(team, owner, engineer):
    rule = _rule()
    dropping, noisy, small, new = (_use_case(team, owner, t) for t in ("Handbook bot", "FAQ bot", "Tiny bot",
                                                                       "New bot"))
    _history(dropping, recent=[0.5, 0.7, 0.6, 0.9] * 10)  # 0.68 over 40
    _history(noisy, recent=[0.9, 1.0, 0.8, 0.9] * 10)  # 0.90 over 40: within the norm
    _history(small, recent=[0.2, 0.4] * 5)  # 0.30 over 10: under the minimum sample
    GroundednessCount.objects.bulk_create([_counts(new, [0.3] * 40, span=5, at=NOW - timedelta(minutes=10))])

    result = detection.rules_evaluate(NOW)

    suggestion = IncidentSuggestion.objects.get()
    assert (result.suggested, suggestion.team_id, suggestion.rule_id) == (1, team.pk, rule.pk)
    assert suggestion.fingerprint == detection.fingerprint(
        rule, detection.Finding(team.pk, f"use_case:{dropping.pk}", "", ""))
    assert suggestion.values["kind"] == "incorrect_outputs" and suggestion.values["use_cases"] == [dropping.pk]
    assert "over 40 scored answers" in suggestion.detail and "over 3600 in the 7 days before" in suggestion.detail

    again = detection.rules_evaluate(NOW + timedelta(seconds=30))
    assert (again.suggested, again.folded) == (0, 1)
    assert IncidentSuggestion.objects.get().seen == 2


def test_the_drop_again_folds_into_the_open_incident_once_per_window(team, owner, engineer):
    _rule(window_minutes=30)
    use_case = _use_case(team, owner, "Handbook bot")
    _history(use_case, recent=[0.4, 0.6, 0.5, 0.7] * 10)
    detection.rules_evaluate(NOW)
    incident = detection.suggestion_open(suggestion=IncidentSuggestion.objects.get(), actor=engineer)
    assert incident.kind == "incorrect_outputs" and list(incident.use_cases.all()) == [use_case]
    events = incident.timeline.count()

    assert detection.rules_evaluate(NOW + timedelta(seconds=30)).folded == 1
    assert detection.rules_evaluate(NOW + timedelta(seconds=60)).folded == 1
    assert incident.timeline.count() == events + 1  # one "fired again" line per window
    assert "fired again: Groundedness dropped" in incident.timeline.order_by("-id").first().text
    assert IncidentSuggestion.objects.count() == 1


def test_the_ledger_fold_attributes_scored_answers_through_their_collection(team, owner, collection):
    linked, also, bound = (_use_case(team, owner, t) for t in ("Handbook bot", "HR bot", "Bound bot"))
    UseCaseCollection.objects.bulk_create([UseCaseCollection(use_case=linked, collection=collection),
                                           UseCaseCollection(use_case=also, collection=collection)])
    at = NOW - timedelta(minutes=3)
    UsageEvent.objects.bulk_create([
        UsageEventFactory.build(team=team, collection_id=collection.pk, groundedness=0.5, occurred_at=at,
                                ingested_at=at),
        UsageEventFactory.build(team=team, collection_id=collection.pk, groundedness=1.0, occurred_at=at,
                                ingested_at=at),
        UsageEventFactory.build(team=team, use_case_id=bound.pk, collection_id=collection.pk, groundedness=0.25,
                                occurred_at=at, ingested_at=at),  # its own use case wins over the links
        UsageEventFactory.build(team=team, collection_id=collection.pk, occurred_at=at, ingested_at=at),  # no score
        UsageEventFactory.build(team=team, collection_id=None, groundedness=0.1, occurred_at=at,
                                ingested_at=at),  # attributed to nothing
    ])
    assert live_quality.ledger_fold(NOW) == 4
    assert live_quality.ledger_fold(NOW) == 0  # read once
    UsageEventFactory(team=team, collection_id=collection.pk, groundedness=0.0, occurred_at=NOW, ingested_at=NOW)
    assert live_quality.ledger_fold(NOW + timedelta(seconds=1)) == 0  # too young: the next tick takes it
    assert live_quality.ledger_fold(NOW + timedelta(seconds=10)) == 1

    for span in live_quality.SPANS:
        sums = live_quality._moments(GroundednessCount.objects.filter(span_minutes=span))
        assert {uc: (m.n, m.total) for uc, m in sums.items()} == {linked.pk: (3, 1.5), also.pk: (3, 1.5),
                                                                  bound.pk: (1, 0.25)}


def test_the_feedback_fold_adds_the_products_own_scores(team, owner):
    use_case = _use_case(team, owner, "Handbook bot")
    at = NOW - timedelta(minutes=2)
    FeedbackFactory(use_case_id=use_case.pk, success=None, thumbs="", groundedness=0.4, created_at=at)
    FeedbackFactory(use_case_id=use_case.pk, success=True, thumbs="up", groundedness=0.8, created_at=at)
    FeedbackFactory(use_case_id=use_case.pk, success=True, thumbs="up", created_at=at)  # no score
    assert live_quality.feedback_fold(NOW) == 3
    row = GroundednessCount.objects.get(span_minutes=5, use_case_id=use_case.pk)
    assert (row.answers, row.total, row.total_sq) == pytest.approx((2, 1.2, 0.8))
