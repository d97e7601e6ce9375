"""Prices at a moment, and the cost of a call. Pure arithmetic on Decimal; no rounding until display."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection
from django.db.models import Q

from apps.costs.models import Price

MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class TokenCounts:
    input_tokens: int = 0  # includes cached input tokens (OpenAI's prompt_tokens)
    output_tokens: int = 0  # includes reasoning tokens (OpenAI's completion_tokens)
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0


_PRICE_FIELDS = [f.attname for f in Price._meta.concrete_fields]
_PRICE_AT_SQL = (
    f"SELECT {', '.join(f.column for f in Price._meta.concrete_fields)} FROM costs_price "
    "WHERE model_name = %s AND valid_from <= %s AND (valid_to IS NULL OR valid_to > %s) AND provider IN (%s, '') "
    "ORDER BY provider <> %s, valid_from DESC LIMIT 1"
)


def price_at(model_name: str, at: datetime, provider: str = "") -> Price | None:
    """The price valid at `at`: a provider-specific row wins over a provider-agnostic one.

    Plain SQL: every model call asks this twice (preflight, record), and building the ORM query cost ~1 ms of
    CPU each time, ~20x the query itself (issue #4 throughput).
    """
    with connection.cursor() as cursor:
        cursor.execute(_PRICE_AT_SQL, [model_name, at, at, provider, provider])
        row = cursor.fetchone()
    return None if row is None else Price.from_db(connection.alias, _PRICE_FIELDS, row)


def cost_of(tokens: TokenCounts, price: Price) -> Decimal:
    """Cached input at the cached price (else the input price); reasoning at its price (else output)."""
    cached = min(tokens.cached_input_tokens, tokens.input_tokens)
    reasoning = min(tokens.reasoning_tokens, tokens.output_tokens)
    cached_price = price.cached_input_per_mtok if price.cached_input_per_mtok is not None else price.input_per_mtok
    reasoning_price = price.reasoning_per_mtok if price.reasoning_per_mtok is not None else price.output_per_mtok
    total = (
        (tokens.input_tokens - cached) * price.input_per_mtok
        + cached * cached_price
        + (tokens.output_tokens - reasoning) * price.output_per_mtok
        + reasoning * reasoning_price
    )
    return total / MILLION


def worst_case_cost(price: Price | None, input_tokens: int, max_output_tokens: int) -> Decimal:
    """What a call could cost at most, for budget reservations: every input token uncached."""
    if price is None:
        return Decimal(0)
    return (input_tokens * price.input_per_mtok + max_output_tokens * price.output_per_mtok) / MILLION


def prices_valid_at(model_names, at: datetime) -> dict[tuple[str, str], Price]:
    """{(model_name, provider): price} valid at `at` for many models in one query (catalog pages).

    Pick with `price_for(prices, model_name, provider)` to get price_at's precedence.
    """
    rows = Price.objects.filter(model_name__in=set(model_names), valid_from__lte=at).filter(
        Q(valid_to__isnull=True) | Q(valid_to__gt=at)
    )
    return {(p.model_name, p.provider): p for p in rows}


def price_for(prices: dict[tuple[str, str], Price], model_name: str, provider: str = "") -> Price | None:
    """From prices_valid_at's result: a provider-specific row wins over a provider-agnostic one."""
    return prices.get((model_name, provider)) or prices.get((model_name, ""))


CENT_MICRO = Decimal("0.00000001")  # the ledger's precision: costs are stored with 8 decimals


def quantize(amount: Decimal | None) -> Decimal | None:
    """Round a cost to the ledger's 8 decimals the way PostgreSQL rounds numeric (half away from zero)."""
    return None if amount is None else amount.quantize(CENT_MICRO, rounding=ROUND_HALF_UP)


def cache_savings_of(tokens: TokenCounts, price: Price) -> Decimal:
    """What cached input saved against paying the full input price for the same tokens."""
    if price.cached_input_per_mtok is None:
        return Decimal(0)
    cached = min(tokens.cached_input_tokens, tokens.input_tokens)
    return cached * (price.input_per_mtok - price.cached_input_per_mtok) / MILLION


class PriceBook:
    """Every price row of a set of models, loaded in one query, answering `price_at` in memory.

    Ingestion looks prices up once per batch: one query whatever the number of events.
    """

    def __init__(self, rows):
        self._rows: dict[str, list[Price]] = {}
        for row in rows:
            self._rows.setdefault(row.model_name, []).append(row)

    @classmethod
    def load(cls, model_names) -> PriceBook:
        names = {n for n in model_names if n}
        return cls(Price.objects.filter(model_name__in=names) if names else [])

    def at(self, model_name: str, provider: str, at: datetime) -> Price | None:
        """price_at's rule: a provider-specific row wins over a provider-agnostic one."""
        fallback = None
        for row in self._rows.get(model_name, ()):
            if row.valid_from <= at and (row.valid_to is None or at < row.valid_to):
                if row.provider == provider:
                    return row
                if row.provider == "" and fallback is None:  # rows come newest first (Price.Meta.ordering)
                    fallback = row
        return fallback
