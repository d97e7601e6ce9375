"""Distinct end users for the scorecards' adoption KPI: the OpenAI `user` field (or metadata.end_user) is kept
only as a keyed hash, per day and key, once per user, written with the call's rollups."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from apps.costs.pricing import TokenCounts
from apps.costs.services import UsageContext
from apps.gateway import recording, traffic
from apps.gateway.models import EndUserDaily
from apps.llm.results import CallRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(gateway_key):
    return gateway_key()[0]


def _row(key, end_user: str) -> dict:
    return {"occurred_at": timezone.now(), "team_id": key.team_id, "gateway_key_id": key.pk, "alias": "chat",
            "deployment": "", "model": "gpt-4o", "status": "ok", "input_tokens": 1, "output_tokens": 1,
            "cost": Decimal("0.01"), "fallbacks": 0, "latency_ms": 120, "use_case_id": 7, "end_user": end_user}


def test_the_end_user_is_a_keyed_hash_never_the_address():
    hashed = recording.end_user_hash(3, {"user": "ann@example.com"}, {})
    assert len(hashed) == 32 and "ann" not in hashed
    assert recording.end_user_hash(3, {}, {"end_user": "ann@example.com"}) == hashed
    assert recording.end_user_hash(4, {"user": "ann@example.com"}, {}) != hashed  # salted by team
    assert recording.end_user_hash(3, {"user": ""}, {}) == "" == recording.end_user_hash(3, {"user": 5}, {})


def test_the_record_carries_the_hash_to_the_writer(key):
    record = CallRecord(request_id="req-1", context=UsageContext(source="gateway", team_id=key.team_id),
                        provider="", model="gpt-4o", price_name=None, operation="chat", tokens=TokenCounts(),
                        status="ok")
    row = recording.row_of(recording.serialize(record, key.pk, "ab" * 16))
    assert row["end_user"] == "ab" * 16 and row["gateway_key_id"] == key.pk


def test_each_user_counts_once_per_day_and_key(key):
    traffic.traffic_add([_row(key, "a" * 32), _row(key, "a" * 32), _row(key, "b" * 32),
                         _row(key, "")])
    traffic.traffic_add([_row(key, "a" * 32)])
    assert sorted(EndUserDaily.objects.values_list("user_hash", flat=True)) == ["a" * 32, "b" * 32]
    assert set(EndUserDaily.objects.values_list("use_case_id", flat=True)) == {7}


def test_the_sdk_user_field_reaches_the_end_user_table_hashed(gateway_url, local_catalog, gateway_key, drain):
    from openai import OpenAI

    key, secret = gateway_key(use_case_id=None)
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    for _ in range(2):
        sdk.chat.completions.create(model="chat", user="ann@example.com",
                                    messages=[{"role": "user", "content": "Refunds take 14 days. How long?"}])
    assert drain() == 2
    row = EndUserDaily.objects.get()
    assert row.gateway_key_id == key.pk and row.user_hash == recording.end_user_hash(key.team_id,
                                                                                     {"user": "ann@example.com"}, {})
