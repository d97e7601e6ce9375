"""Recording, nothing lost: the stream is written once through the ledger's one path, stale entries of a dead
writer are taken over, an unreadable entry is set aside, and no key material reaches a log line or a row."""

from __future__ import annotations

import logging
import time
from decimal import Decimal

import openai
import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext
from openai import OpenAI

from apps.core import redis as portal_redis
from apps.costs.models import UsageEvent
from apps.gateway import recording
from tests.factories import PriceFactory

QUESTION = [{"role": "user", "content": "Question: how long do refunds take?\n\n[1] Refunds take 14 days."}]


def _ask(url, secret, n=1):
    sdk = OpenAI(base_url=url, api_key=secret, max_retries=0)
    return [sdk.chat.completions.with_raw_response.create(model="local-extractive", messages=QUESTION)
            .headers["x-portal-request-id"] for _ in range(n)]


def test_each_answer_is_on_the_stream_before_the_client_has_it(gateway_url, local_catalog, gateway_key):
    _key, secret = gateway_key()
    request_ids = _ask(gateway_url, secret, 3)
    entries = portal_redis.client().xrange(recording.stream_key())
    assert [recording.row_of(fields[b"r"])["request_id"] for _id, fields in entries] == request_ids


def test_a_dead_writers_unacknowledged_records_are_taken_over_and_written_once(
        gateway_url, local_catalog, gateway_key, settings):
    key, secret = gateway_key()
    request_ids = _ask(gateway_url, secret, 2)
    client = portal_redis.client()
    recording.ensure_group(client)
    got = client.xreadgroup(recording.GROUP, "dead-writer", {recording.stream_key(): ">"}, count=10)  # never acked
    settings.GATEWAY_RECORDER_CLAIM_IDLE_MS = 0
    assert recording.drain_once("live-writer", block_ms=0) == 2
    assert sorted(UsageEvent.objects.values_list("request_id", flat=True)) == sorted(request_ids)
    assert client.xlen(recording.stream_key()) == 0
    # The same records arrive again (a writer died after its commit, before its XACK): nothing changes.
    for _entry_id, fields in got[0][1]:
        client.xadd(recording.stream_key(), fields)
    assert recording.drain_all("live-writer") == 2
    assert UsageEvent.objects.filter(gateway_key_id=key.pk).count() == 2


@pytest.mark.parametrize("unreadable", [b"{not json", b"[1, 2]", b'{"model": "local-extractive"}'])
def test_an_unreadable_record_goes_to_the_dead_letter_stream_and_the_rest_are_written(
        gateway_url, local_catalog, gateway_key, drain, unreadable):
    _key, secret = gateway_key()
    portal_redis.client().xadd(recording.stream_key(), {"r": unreadable})
    _ask(gateway_url, secret)
    drain()
    assert UsageEvent.objects.count() == 1
    assert portal_redis.client().xlen(recording.dead_key()) == 1
    portal_redis.client().delete(recording.dead_key())


def test_a_batch_is_priced_with_one_query_whatever_its_size(gateway_url, local_catalog, gateway_key):
    PriceFactory(model_name="local-extractive", input_per_mtok=Decimal("1"), output_per_mtok=Decimal("2"))
    _key, secret = gateway_key()
    _ask(gateway_url, secret, 5)
    with CaptureQueriesContext(connection) as queries:
        assert recording.drain_once("writer", block_ms=0) == 5
    assert len([q for q in queries if '"costs_price"' in q["sql"]]) == 1
    assert [row.cost > 0 for row in UsageEvent.objects.all()] == [True] * 5


def test_no_key_material_in_any_log_line_stream_entry_or_ledger_row(gateway_url, local_catalog, gateway_key,
                                                                     drain, caplog):
    key, secret = gateway_key()
    caplog.set_level(logging.DEBUG)
    _ask(gateway_url, secret)
    bad = OpenAI(base_url=gateway_url, api_key=secret[:-4] + "AAAA", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    stream = str(portal_redis.client().xrange(recording.stream_key()))
    drain()
    row = str(list(UsageEvent.objects.values()))
    secret_part = secret.removeprefix(key.prefix)
    for text in (caplog.text, stream, row):
        assert secret_part not in text and key.key_hash not in text


def test_the_writer_waits_after_a_short_batch_so_the_next_gathers_and_goes_on_after_a_full_or_empty_one(settings):
    settings.GATEWAY_RECORDER_BATCH = 500
    settings.GATEWAY_RECORDER_LINGER_MS = 200

    assert recording.linger_after(3) == 0.2  # a short batch: wait, the next one gathers more rows
    assert recording.linger_after(500) == 0.0  # a full batch: more is waiting, go on
    assert recording.linger_after(0) == 0.0  # an empty read has blocked already
    settings.GATEWAY_RECORDER_LINGER_MS = 0
    assert recording.linger_after(3) == 0.0  # linger off: a batch per read, as before


def test_a_record_redis_fails_after_the_answer_reaches_the_ledger_directly_and_only_once(
        gateway_url, local_catalog, gateway_key, drain, monkeypatch, caplog):
    """The record is written before the answer and its reply read after it (ADR 0133): a reply that never comes
    sends the record to the ledger from the gateway itself; the copy Redis did take changes nothing."""

    async def lost(*args, **kwargs):
        raise redis.exceptions.ConnectionError("Redis closed the connection.")

    _key, secret = gateway_key()
    (warm_up,) = _ask(gateway_url, secret)  # the server's pipelined connection is up (a first record waits)
    monkeypatch.setattr(recording._RECORD, "answer", lost)
    (request_id,) = _ask(gateway_url, secret)  # answered: the reply is read only after the answer
    deadline = time.monotonic() + 5
    while not UsageEvent.objects.filter(request_id=request_id).exists() and time.monotonic() < deadline:
        time.sleep(0.02)

    assert UsageEvent.objects.filter(request_id=request_id).count() == 1  # no writer has run
    assert "not confirmed by Redis" in caplog.text
    assert drain() == 2  # the stream held it too (beside the warm-up's) …
    assert UsageEvent.objects.filter(request_id=request_id).count() == 1  # … and the ledger keeps one row
