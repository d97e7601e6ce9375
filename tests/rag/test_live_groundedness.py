"""Live groundedness (ADR 0121): an answer whose groundedness was judged carries the score on its usage event,
which goes to the ledger through the recording queue (no write in the request); the detection beat then counts
it for the use cases linked to the collection. An answer without a score records none; a call written at once
(a budget reservation, Redis down) still gets its score."""

import pytest
import redis
from django.utils import timezone

from apps.costs import services as costs_services
from apps.costs.models import UsageEvent
from apps.gateway import recording
from apps.incidents import live_quality
from apps.incidents.models import GroundednessCount
from apps.rag.answers import answer_question
from apps.rag.config import RetrievalConfig
from apps.rag.retrieval import retrieve
from apps.reviews.models import UseCase, UseCaseCollection
from tests.rag.conftest import add_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(collection):
    add_text(collection, "shop.txt", "Refunds are paid within 14 days. Shipping is free for orders above 50 euros.")
    return collection


def _ask(collection, user, **options):
    result = retrieve(collection=collection, query="How long do refunds take?", actor=user,
                      config=RetrievalConfig(k=2))
    return answer_question(collection=collection, retrieval=result, user=user, **options)


def test_an_answers_score_reaches_the_ledger_with_it_and_counts_for_the_collections_use_case(shop, owner, team,
                                                                                             stream):
    use_case = UseCase.objects.create(team=team, title="Refund helper", purpose="Refund questions",
                                      business_owner=owner)
    UseCaseCollection.objects.create(use_case=use_case, collection=shop)
    answer = _ask(shop, owner)
    assert answer.groundedness is not None
    assert not UsageEvent.objects.filter(feature="rag.answer").exists()  # queued, not written in the request

    recording.drain_all("test-writer")
    event = UsageEvent.objects.get(feature="rag.answer")
    assert (event.groundedness, event.collection_id, event.source) == (answer.groundedness, shop.pk, "rag")
    assert event.input_tokens == answer.input_tokens

    live_quality.ledger_fold(timezone.now() + live_quality.FOLD_LAG)
    counts = GroundednessCount.objects.get(span_minutes=5, use_case_id=use_case.pk)
    assert (counts.answers, counts.total) == (1, pytest.approx(answer.groundedness))


def test_an_answer_without_groundedness_records_none(shop, owner, stream):
    answer = _ask(shop, owner, check_groundedness=False)  # an eval run's answers: judged by the run instead
    assert answer.groundedness is None
    assert UsageEvent.objects.get(feature="rag.answer").groundedness is None  # written at once, as before
    assert stream.xlen(recording.stream_key()) == 1  # only the query's embedding is queued
    recording.drain_all("test-writer")
    assert not UsageEvent.objects.filter(groundedness__isnull=False).exists()
    assert live_quality.ledger_fold(timezone.now() + live_quality.FOLD_LAG) == 0


def test_an_answer_holding_a_budget_reservation_is_written_at_once_with_its_score(shop, owner, stream,
                                                                                 monkeypatch):
    monkeypatch.setattr(costs_services, "usage_preflight", lambda **kwargs: ["a reservation to settle"])
    answer = _ask(shop, owner)
    assert UsageEvent.objects.get(feature="rag.answer").groundedness == answer.groundedness is not None
    assert stream.xlen(recording.stream_key()) == 0


def test_an_answer_whose_queue_is_down_is_written_at_once_with_its_score(shop, owner, stream, monkeypatch):
    def refuse(record):
        raise redis.ConnectionError("Redis is down")

    monkeypatch.setattr(recording, "queue_record", refuse)
    answer = _ask(shop, owner)
    assert UsageEvent.objects.get(feature="rag.answer").groundedness == answer.groundedness is not None
