"""Shared set-up for the costs tests: prices, an ingest token, and a helper to send batches."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from apps.costs.services import price_set

JAN = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def prices(db):
    """gpt-4o-mini with a cached price, and gpt-4o (no cached price) — both valid since 2025-01-01."""
    return {
        "gpt-4o-mini": price_set(model_name="gpt-4o-mini", input_per_mtok="0.15", output_per_mtok="0.60",
                                 cached_input_per_mtok="0.075", valid_from=JAN),
        "gpt-4o": price_set(model_name="gpt-4o", input_per_mtok="2.50", output_per_mtok="10.00", valid_from=JAN),
    }


@pytest.fixture
def march_2025_is_recent(settings):
    """The recorded events and OTLP exports are dated March 2025: keep that inside the ingest window (events
    older than the raw retention are refused)."""
    settings.COSTS_RAW_RETENTION_DAYS = 36500


@pytest.fixture
def ingest_token(engineer, team, token_for):
    token, secret = token_for(engineer, team, scope="ingest")
    return token, secret


@pytest.fixture
def api(client):
    """api(secret).post(path, json) / .get(path, params) with a bearer token."""

    class Api:
        def __init__(self, secret):
            self.headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}

        def post(self, path, body, content_type="application/json"):
            import json

            data = body if isinstance(body, (str, bytes)) else json.dumps(body, default=str)
            return client.post(path, data=data, content_type=content_type, **self.headers)

        def get(self, path, params=None):
            return client.get(path, params or {}, **self.headers)

    return Api


def event(n: int = 0, **overrides) -> dict:
    base = {"request_id": f"req-{n}", "occurred_at": "2025-03-10T12:00:00Z", "model": "gpt-4o-mini",
            "provider": "openai", "feature": "answer", "tenant": "acme", "input_tokens": 1000,
            "output_tokens": 200}
    return {**base, **overrides}


def money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.00000001"))


def record(*events: dict) -> list[dict]:
    """Write events straight through the ledger (priced, rolled up, counted against budgets), no API."""
    from apps.costs.ingest import price_rows
    from apps.costs.ledger import DEFAULTS, ledger_write

    rows = []
    for i, e in enumerate(events):
        row = {**DEFAULTS, "source": "api", "provider": "openai", "model": "gpt-4o-mini", **e}
        row.setdefault("request_id", f"rec-{id(e)}-{i}")
        if isinstance(row.get("occurred_at"), str):
            row["occurred_at"] = datetime.fromisoformat(row["occurred_at"])
        rows.append(row)
    price_rows(rows)
    return ledger_write(rows)


QUESTION = [{"role": "user", "content": "[1] Refunds take 14 days.\n\nHow long do refunds take?"}]


@pytest.fixture
def capped_model(db):
    """The offline extractive chat model, priced (as 'priced-local') high enough for budgets to bite."""
    from apps.llm.models import ModelKind, ProviderKind
    from tests.factories import ModelFactory, ProviderFactory

    provider = ProviderFactory(name="local", kind=ProviderKind.LOCAL)
    model = ModelFactory(name="priced-local", provider=provider, remote_name="local-extractive",
                         kind=ModelKind.CHAT, price_name="priced-local", max_output_tokens=200)
    price_set(model_name="priced-local", input_per_mtok="1000", output_per_mtok="2000", valid_from=JAN)
    return model


def worst_case(model, max_tokens: int) -> Decimal:
    from apps.costs.pricing import price_at, worst_case_cost
    from apps.llm.tokens import estimate_messages_tokens

    price = price_at(model.priced_as, datetime.now(UTC))
    return worst_case_cost(price, estimate_messages_tokens(QUESTION), max_tokens)
