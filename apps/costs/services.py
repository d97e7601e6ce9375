"""Writes to the usage ledger and the price catalog."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.audit.services import audit_record
from apps.costs.models import CallStatus, Price, UsageEvent
from apps.costs.pricing import TokenCounts, cost_of, price_at

SEED_PRICES = Path(__file__).parent / "data" / "prices.json"


@dataclass
class UsageContext:
    """Who and what a model call is for: attribution that travels with every call into the ledger."""

    source: str
    team_id: int | None = None
    user_id: int | None = None
    api_token_id: int | None = None
    feature: str = ""
    use_case_id: int | None = None
    tenant: str = ""
    prompt_name: str = ""
    prompt_version: int | None = None
    collection_id: int | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)


def usage_event_record(*, context: UsageContext, provider: str, model: str, price_name: str | None = None,
                       operation: str, tokens: TokenCounts, latency_ms: int, status: str = CallStatus.OK,
                       error_type: str = "", occurred_at: datetime | None = None) -> UsageEvent:
    """Record one model call, priced at the price valid when it happened. Idempotent by request id."""
    occurred_at = occurred_at or timezone.now()
    price = price_at(price_name or model, occurred_at, provider) if status == CallStatus.OK else None
    cost = cost_of(tokens, price) if price is not None else None
    if status != CallStatus.OK and price is None:
        cost = Decimal(0) if tokens.input_tokens == tokens.output_tokens == 0 else None
    event = UsageEvent(
        occurred_at=occurred_at, request_id=context.request_id, team_id=context.team_id, feature=context.feature,
        use_case_id=context.use_case_id, tenant=context.tenant, user_id=context.user_id,
        api_token_id=context.api_token_id, provider=provider, model=model, operation=operation,
        prompt_name=context.prompt_name, prompt_version=context.prompt_version,
        collection_id=context.collection_id, source=context.source,
        input_tokens=tokens.input_tokens, output_tokens=tokens.output_tokens,
        cached_input_tokens=tokens.cached_input_tokens, reasoning_tokens=tokens.reasoning_tokens,
        cost=cost, price=price, latency_ms=latency_ms, status=status, error_type=error_type[:80],
    )
    try:
        with transaction.atomic():
            event.save(force_insert=True)
    except IntegrityError:
        return UsageEvent.objects.get(request_id=context.request_id)
    return event


def usage_preflight(*, context: UsageContext, model: str, worst_case_cost: Decimal | None) -> None:
    """Asked by the model call path (apps.llm.calls) before every call; may refuse it by raising.

    `model` is the portal's model name; `worst_case_cost` what the call could cost at most (every input
    token uncached, max_tokens of output), or None when the model has no price — unknown, not free.
    `context.request_id` is the id the call will be recorded under, so a reservation made here can be
    settled when usage_event_record writes that id.

    Today it allows everything and returns None. The budgets work will reserve budget here and raise
    BudgetExceeded; whatever it raises, the call path records a usage event with status "refused" and
    error_type set to the exception's class name, then re-raises the exception unchanged.
    """
    return None


def _decimal(value, field_name: str, required: bool = True) -> Decimal | None:
    if value in (None, ""):
        if required:
            raise ValidationError({field_name: "This price is required."})
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValidationError({field_name: f"{value!r} is not a number."})
    if number < 0:
        raise ValidationError({field_name: "A price cannot be negative."})
    return number


@transaction.atomic
def price_set(*, model_name: str, input_per_mtok, output_per_mtok, cached_input_per_mtok=None,
              reasoning_per_mtok=None, valid_from: datetime | None = None, provider: str = "",
              source: str = "admin", user=None) -> Price:
    """Start a new price for a model at `valid_from`, closing the open one. History is never rewritten."""
    valid_from = valid_from or timezone.now()
    values = {
        "input_per_mtok": _decimal(input_per_mtok, "input_per_mtok"),
        "output_per_mtok": _decimal(output_per_mtok, "output_per_mtok"),
        "cached_input_per_mtok": _decimal(cached_input_per_mtok, "cached_input_per_mtok", required=False),
        "reasoning_per_mtok": _decimal(reasoning_per_mtok, "reasoning_per_mtok", required=False),
    }
    if not model_name.strip():
        raise ValidationError({"model_name": "Name the model this price is for."})
    later = Price.objects.select_for_update().filter(model_name=model_name, provider=provider,
                                                     valid_from__gte=valid_from).order_by("valid_from").first()
    if later is not None:
        raise ValidationError({"valid_from": f"A price starting {later.valid_from:%Y-%m-%d %H:%M} already exists; "
                                             "prices can only be added after the latest one."})
    current = Price.objects.select_for_update().filter(model_name=model_name, provider=provider,
                                                       valid_to__isnull=True).first()
    before = None
    if current is not None:
        before = {k: str(getattr(current, k)) for k in values}
        current.valid_to = valid_from
        current.save(update_fields=["valid_to"])
    price = Price.objects.create(model_name=model_name, provider=provider, valid_from=valid_from, source=source,
                                 created_by=user if getattr(user, "is_authenticated", False) else None, **values)
    audit_record(action="price.set", obj=price, object_repr=model_name, user=user,
                 changes={"model": model_name, "provider": provider, "valid_from": valid_from,
                          "before": before, "after": {k: str(v) for k, v in values.items()}})
    return price


@transaction.atomic
def prices_seed(path: Path = SEED_PRICES) -> int:
    """Load the shipped price list for models that have no price yet. Idempotent."""
    data = json.loads(path.read_text())
    valid_from = parse_datetime(data["valid_from"])
    created = 0
    for row in data["prices"]:
        if Price.objects.filter(model_name=row["model"], provider=row.get("provider", "")).exists():
            continue
        price_set(model_name=row["model"], provider=row.get("provider", ""), input_per_mtok=row["input"],
                  output_per_mtok=row["output"], cached_input_per_mtok=row.get("cached_input"),
                  reasoning_per_mtok=row.get("reasoning"), valid_from=valid_from,
                  source=f"seed {data['as_of']}")
        created += 1
    return created
