"""A query's embedding is still one usage event, recorded off the request path (ADR 0047): the request only queues
its record, the ledger writer puts it on the ledger; a call holding a budget reservation, or one whose queue is
down, is written at once, so nothing is ever lost."""

import pytest
import redis

from apps.costs import services as costs_services
from apps.costs.models import UsageEvent
from apps.gateway import recording
from apps.rag import retrieval
from apps.rag.config import RetrievalConfig
from tests.rag.conftest import add_text

pytestmark = pytest.mark.django_db


def test_a_querys_usage_event_lands_when_the_writer_drains_the_queue(collection, owner, stream):
    add_text(collection, "dogs.txt", "Dogs are loyal companions and need daily walks.")
    result = retrieval.retrieve(collection=collection, query="dogs that need walks", actor=owner,
                                config=RetrievalConfig(mode="hybrid", k=3))
    assert [h.source_name for h in result.hits] == ["dogs.txt"]
    assert not UsageEvent.objects.filter(feature="rag.query").exists()  # nothing written in the request

    assert recording.drain_all("test-writer") == 1
    event = UsageEvent.objects.get(feature="rag.query")
    assert (event.source, event.collection_id, event.team_id, event.user_id) == ("rag", collection.pk,
                                                                                  collection.team_id, owner.pk)
    assert event.status == "ok" and event.input_tokens > 0 and event.operation == "embedding"
    assert event.gateway_key_id is None
    assert stream.xlen(recording.stream_key()) == 0


def test_a_query_holding_a_budget_reservation_is_written_at_once(collection, stream, monkeypatch):
    monkeypatch.setattr(costs_services, "usage_preflight", lambda **kwargs: ["a reservation to settle"])
    retrieval.embed_query(collection, ["dogs that need walks"], record_later=True)
    assert UsageEvent.objects.filter(feature="rag.query").count() == 1
    assert stream.xlen(recording.stream_key()) == 0


def test_a_query_whose_queue_is_down_is_written_at_once(collection, stream, monkeypatch):
    def refuse(record):
        raise redis.ConnectionError("Redis is down")

    monkeypatch.setattr(recording, "queue_record", refuse)
    retrieval.embed_query(collection, ["dogs that need walks"], record_later=True)
    assert UsageEvent.objects.filter(feature="rag.query").count() == 1
