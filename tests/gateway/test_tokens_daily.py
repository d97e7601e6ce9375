"""Tokens per call per use case and day, as a log-scale histogram the recorder adds in the ledger's transaction:
what the scorecards' median and P95 tokens per request read (never the ledger)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.costs.rollups import token_bin
from apps.gateway import traffic
from apps.gateway.models import TokensDaily

pytestmark = pytest.mark.django_db


def _row(*, tokens: int, use_case_id: int | None = 7, status: str = "ok", when=None) -> dict:
    return {"occurred_at": when or timezone.now(), "team_id": 1, "gateway_key_id": 5, "alias": "chat",
            "deployment": "", "model": "gpt-4o", "status": status, "input_tokens": tokens - tokens // 4,
            "output_tokens": tokens // 4, "cost": Decimal("0.01"), "fallbacks": 0, "latency_ms": 120,
            "use_case_id": use_case_id}


def _bins(row: TokensDaily) -> dict[int, int]:
    return {b: n for b, n in enumerate(row.bins) if n}


def test_each_call_lands_in_the_bin_of_its_input_plus_output_tokens_per_use_case_and_day():
    yesterday = timezone.now() - timedelta(days=1)
    traffic.traffic_add([_row(tokens=100), _row(tokens=100), _row(tokens=5000), _row(tokens=100, when=yesterday),
                         _row(tokens=100, use_case_id=None)])
    today = TokensDaily.objects.get(use_case_id=7, day=timezone.now().date())
    assert _bins(today) == {token_bin(100): 2, token_bin(5000): 1}
    assert _bins(TokensDaily.objects.get(use_case_id=7, day=yesterday.date())) == {token_bin(100): 1}
    assert TokensDaily.objects.count() == 2  # calls without a use case are not kept


def test_later_batches_add_up_whatever_the_width_of_their_bins():
    traffic.traffic_add([_row(tokens=40_000)])
    traffic.traffic_add([_row(tokens=3), _row(tokens=40_000)])
    assert _bins(TokensDaily.objects.get()) == {token_bin(3): 1, token_bin(40_000): 2}


def test_a_refused_call_is_not_in_the_bins_but_marks_the_use_case_as_having_new_data():
    before = timezone.now() - timedelta(seconds=1)
    traffic.traffic_add([_row(tokens=0, status="refused")])
    row = TokensDaily.objects.get()
    assert _bins(row) == {} and row.updated_at >= before
