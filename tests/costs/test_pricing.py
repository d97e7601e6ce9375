"""Prices are effective-dated and never overlap; a call's cost counts cached input and reasoning tokens apart."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.audit.models import AuditEvent
from apps.costs.models import CallStatus, Price
from apps.costs.pricing import TokenCounts, cost_of, price_at, price_for, prices_valid_at, worst_case_cost
from apps.costs.services import UsageContext, price_set, usage_event_record
from tests.factories import PriceFactory

pytestmark = pytest.mark.django_db

JAN = datetime(2025, 1, 1, tzinfo=UTC)
MAR = datetime(2025, 3, 1, tzinfo=UTC)
JUN = datetime(2025, 6, 1, tzinfo=UTC)
MILLION = Decimal(1_000_000)


def price(**values) -> Price:
    defaults = {"model_name": "gpt-4o", "input_per_mtok": Decimal("2.50"), "output_per_mtok": Decimal("10.00"),
                "cached_input_per_mtok": None, "reasoning_per_mtok": None, "valid_from": JAN}
    return Price(**{**defaults, **values})


def test_the_price_at_a_moment_is_the_one_valid_then():
    price_set(model_name="gpt-4o", input_per_mtok="5.00", output_per_mtok="15.00", valid_from=JAN)
    price_set(model_name="gpt-4o", input_per_mtok="2.50", output_per_mtok="10.00", valid_from=MAR)

    assert price_at("gpt-4o", datetime(2024, 12, 31, tzinfo=UTC)) is None
    assert price_at("gpt-4o", JAN).input_per_mtok == Decimal("5.00")
    assert price_at("gpt-4o", datetime(2025, 2, 28, 23, 59, tzinfo=UTC)).input_per_mtok == Decimal("5.00")
    assert price_at("gpt-4o", MAR).input_per_mtok == Decimal("2.50")  # valid_to is exclusive
    assert price_at("gpt-4o", JUN).input_per_mtok == Decimal("2.50")


def test_price_set_closes_the_previous_row_and_audits_both_sides():
    first = price_set(model_name="gpt-4o", input_per_mtok="5", output_per_mtok="15", valid_from=JAN)
    second = price_set(model_name="gpt-4o", input_per_mtok="2.5", output_per_mtok="10", valid_from=MAR)

    first.refresh_from_db()
    assert first.valid_to == MAR and second.valid_to is None
    last = AuditEvent.objects.filter(action="price.set").order_by("-id").first()
    assert last.changes["before"]["input_per_mtok"] == "5.000000"
    assert last.changes["after"]["input_per_mtok"] == "2.5"


def test_price_set_refuses_to_rewrite_history():
    price_set(model_name="gpt-4o", input_per_mtok="2.5", output_per_mtok="10", valid_from=MAR)

    with pytest.raises(ValidationError) as failure:
        price_set(model_name="gpt-4o", input_per_mtok="1", output_per_mtok="1", valid_from=JAN)
    assert "valid_from" in failure.value.message_dict
    assert Price.objects.count() == 1


def test_the_database_refuses_overlapping_prices():
    PriceFactory(model_name="gpt-4o", valid_from=JAN, valid_to=JUN)

    with pytest.raises(IntegrityError, match="overlaps"), transaction.atomic():
        PriceFactory(model_name="gpt-4o", valid_from=MAR)  # inside [JAN, JUN)
    PriceFactory(model_name="gpt-4o", valid_from=JUN)  # touching is fine: ranges are half-open
    PriceFactory(model_name="gpt-4o", provider="azure", valid_from=MAR)  # another provider's own price


def test_a_provider_specific_price_wins_over_the_general_one():
    PriceFactory(model_name="gpt-4o", input_per_mtok=Decimal("2.50"), valid_from=JAN)
    PriceFactory(model_name="gpt-4o", provider="azure-eu", input_per_mtok=Decimal("2.75"), valid_from=JAN)

    assert price_at("gpt-4o", MAR, "azure-eu").input_per_mtok == Decimal("2.75")
    assert price_at("gpt-4o", MAR, "openai").input_per_mtok == Decimal("2.50")
    many = prices_valid_at(["gpt-4o"], MAR)
    assert price_for(many, "gpt-4o", "azure-eu").input_per_mtok == Decimal("2.75")
    assert price_for(many, "gpt-4o", "openai").input_per_mtok == Decimal("2.50")


def test_cached_input_is_charged_at_the_cached_price():
    tokens = TokenCounts(input_tokens=10_000, cached_input_tokens=8_000, output_tokens=500)

    cost = cost_of(tokens, price(cached_input_per_mtok=Decimal("1.25")))

    assert cost == (2_000 * Decimal("2.50") + 8_000 * Decimal("1.25") + 500 * Decimal("10.00")) / MILLION


def test_without_a_cached_price_cached_input_costs_the_input_price():
    tokens = TokenCounts(input_tokens=10_000, cached_input_tokens=8_000, output_tokens=0)

    assert cost_of(tokens, price()) == 10_000 * Decimal("2.50") / MILLION


def test_reasoning_tokens_are_part_of_output_and_use_their_own_price_when_there_is_one():
    tokens = TokenCounts(input_tokens=1_000, output_tokens=3_000, reasoning_tokens=2_000)

    assert cost_of(tokens, price()) == (1_000 * Decimal("2.50") + 3_000 * Decimal("10.00")) / MILLION
    with_reasoning_price = cost_of(tokens, price(reasoning_per_mtok=Decimal("20.00")))
    assert with_reasoning_price == (1_000 * Decimal("2.50") + 1_000 * Decimal("10.00")
                                    + 2_000 * Decimal("20.00")) / MILLION


def test_cached_and_reasoning_counts_above_their_totals_are_capped():
    tokens = TokenCounts(input_tokens=100, cached_input_tokens=500, output_tokens=10, reasoning_tokens=50)

    assert cost_of(tokens, price(cached_input_per_mtok=Decimal("0"))) == 10 * Decimal("10.00") / MILLION


def test_an_unpriced_model_costs_none_not_zero():
    event = usage_event_record(context=UsageContext(source="api"), provider="openai", model="brand-new-model",
                               operation="chat", tokens=TokenCounts(input_tokens=100, output_tokens=10),
                               latency_ms=5)

    assert event.cost is None and event.is_unpriced


def test_a_failed_call_without_tokens_costs_zero_and_is_not_unpriced():
    event = usage_event_record(context=UsageContext(source="api"), provider="openai", model="gpt-4o",
                               operation="chat", tokens=TokenCounts(), latency_ms=5, status=CallStatus.ERROR,
                               error_type="ProviderUnavailable")

    assert event.cost == 0 and not event.is_unpriced


def test_a_usage_event_is_priced_at_the_price_valid_when_the_call_happened():
    price_set(model_name="gpt-4o", input_per_mtok="5", output_per_mtok="15", valid_from=JAN)
    price_set(model_name="gpt-4o", input_per_mtok="2.5", output_per_mtok="10", valid_from=MAR)
    tokens = TokenCounts(input_tokens=1_000_000)

    before = usage_event_record(context=UsageContext(source="api"), provider="openai", model="gpt-4o",
                                operation="chat", tokens=tokens, latency_ms=1, occurred_at=datetime(2025, 2, 1,
                                                                                                    tzinfo=UTC))
    after = usage_event_record(context=UsageContext(source="api"), provider="openai", model="gpt-4o",
                               operation="chat", tokens=tokens, latency_ms=1, occurred_at=JUN)

    assert (before.cost, after.cost) == (Decimal("5"), Decimal("2.5"))


def test_the_worst_case_assumes_nothing_cached_and_every_output_token_used():
    assert worst_case_cost(price(cached_input_per_mtok=Decimal("0.01")), 1_000, 500) == (
        1_000 * Decimal("2.50") + 500 * Decimal("10.00")) / MILLION
