"""Writes to the usage ledger and the price catalog."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.accounts.permissions import Action, can, is_admin, restrict
from apps.audit.services import audit_record, diff
from apps.core.safe_input import text_problem
from apps.costs import rollups
from apps.costs.budgets import (
    BudgetExceeded,  # noqa: F401  (re-exported: what usage_preflight raises)
    counters_recount,
    period_ensure,
    reserve,
)
from apps.costs.ledger import DEFAULTS, ledger_write
from apps.costs.models import Budget, BudgetPeriodKind, CallStatus, Outcome, Price, UsageEvent, UsageRollup
from apps.costs.pricing import PriceBook, TokenCounts, cache_savings_of, cost_of, price_at, quantize
from apps.costs.repricing import repricing_job_request

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
    experiment_id: int | None = None  # an online experiment's arm (the gateway's splits, docs/experiments.md)
    experiment_arm: str = ""
    experiment_unit: str = ""  # the keyed hash of the unit the split was sticky on (per-unit analysis)
    # The switch (an incident mitigation's id) that acted on this call: refused, filtered or rerouted it, or made
    # it answer without retrieval; set by the call path (apps/llm/switches.py, the gateway) — ADR 0122.
    switch_id: int | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)


def usage_row(*, context: UsageContext, provider: str, model: str, price_name: str | None = None,
              operation: str, tokens: TokenCounts, latency_ms: int, status: str = CallStatus.OK,
              error_type: str = "", occurred_at: datetime | None = None, prices: PriceBook | None = None,
              cache_tokens: TokenCounts | None = None, **gateway) -> dict:
    """One priced ledger row (for `ledger_write`), at the price valid when the call happened (from `prices`, a
    PriceBook loaded once for a batch of rows, else one query).

    `gateway`: the gateway's columns (gateway_key_id, alias, deployment, upstream_ms, ttft_ms, cache_hit,
    fallbacks, cache_saving, guardrail_actions: a list, or None for none), and a RAG answer's groundedness; the
    gateway's recorder writes its rows in batches through ledger_write with this.

    `cache_tokens`: a response-cache hit's stored answer's tokens. Its saving is what they cost at the price valid
    at the hit's time (the price this row is priced at): unchanged from the original call's cost while the price
    is, and never today's price. Without them, or without a price then, the given `cache_saving` stands.
    """
    unknown = set(gateway) - GATEWAY_COLUMNS
    if unknown:
        raise TypeError(f"usage_row() got unexpected keyword arguments {sorted(unknown)}")
    occurred_at = occurred_at or timezone.now()
    name = price_name or model
    price = prices.at(name, provider, occurred_at) if prices is not None else price_at(name, occurred_at, provider)
    if price is not None:
        cost, savings = quantize(cost_of(tokens, price)), quantize(cache_savings_of(tokens, price))
    else:
        cost = Decimal(0) if tokens.input_tokens == tokens.output_tokens == 0 else None
        savings = Decimal(0)
    row = {
        **DEFAULTS,
        "occurred_at": occurred_at, "request_id": context.request_id[:100], "team_id": context.team_id,
        "feature": context.feature[:120], "use_case_id": context.use_case_id, "tenant": context.tenant[:120],
        "user_id": context.user_id, "api_token_id": context.api_token_id, "provider": provider[:50],
        "model": model[:200], "operation": operation, "prompt_name": context.prompt_name[:200],
        "prompt_version": context.prompt_version, "collection_id": context.collection_id, "source": context.source,
        "experiment_id": context.experiment_id, "experiment_arm": context.experiment_arm[:40],
        "experiment_unit": context.experiment_unit[:32], "switch_id": context.switch_id,
        "input_tokens": tokens.input_tokens, "output_tokens": tokens.output_tokens,
        "cached_input_tokens": min(tokens.cached_input_tokens, tokens.input_tokens),
        "reasoning_tokens": min(tokens.reasoning_tokens, tokens.output_tokens), "cost": cost,
        "price_id": price.pk if price else None, "latency_ms": latency_ms, "status": status,
        "error_type": error_type[:80], "cache_savings": savings,
    }
    row.update({k: (v[:200] if isinstance(v, str) else v) for k, v in gateway.items()})
    if cache_tokens is not None and price is not None and row["cache_hit"]:
        row["cache_saving"] = quantize(cost_of(cache_tokens, price))
    row["_price"] = price
    return row


GATEWAY_COLUMNS = frozenset({"gateway_key_id", "alias", "deployment", "upstream_ms", "ttft_ms", "cache_hit",
                             "fallbacks", "cache_saving", "guardrail_actions", "groundedness"})


def usage_event_record(*, context: UsageContext, provider: str, model: str, price_name: str | None = None,
                       operation: str, tokens: TokenCounts, latency_ms: int, status: str = CallStatus.OK,
                       error_type: str = "", occurred_at: datetime | None = None,
                       cache_tokens: TokenCounts | None = None, **gateway) -> UsageEvent:
    """Record one model call, priced at the price valid when it happened. Idempotent by request id.

    Goes through the ledger's one write path: rollups and budget counters move in the same transaction, and
    any budget reservation made for this request id by usage_preflight is settled (released, real cost spent).
    A failed call is priced on the tokens it did use; a call that used nothing costs 0.
    """
    row = usage_row(context=context, provider=provider, model=model, price_name=price_name, operation=operation,
                    tokens=tokens, latency_ms=latency_ms, status=status, error_type=error_type,
                    occurred_at=occurred_at, cache_tokens=cache_tokens, **gateway)
    price = row.pop("_price")
    inserted = ledger_write([row], settle=True)
    if not inserted:
        return UsageEvent.objects.get(request_id=row["request_id"])
    fields = {k: v for k, v in row.items() if k not in ("cache_savings", "id")}
    event = UsageEvent(pk=row["id"], **fields)
    event.price = price
    event._state.adding = False
    return event


def usage_preflight(*, context: UsageContext, model: str, worst_case_cost: Decimal | None) -> list:
    """Asked by the model call path (apps.llm.calls) before every call; refuses it by raising BudgetExceeded.

    `worst_case_cost` is what the call could cost at most (every input token uncached, max_tokens of output),
    or None when the model has no price. Every active budget with a hard cap that matches the call's team,
    feature, tenant and use case reserves it atomically (apps.costs.budgets.reserve); usage_event_record for the same
    `context.request_id` settles the reservation, on success and on failure alike. A capped scope refuses
    unpriced models: their cost is unknown, so the cap could not hold. Returns the reservations made (empty:
    nothing to settle, so the call's record may wait in a queue for the ledger writer).
    """
    return reserve(request_id=context.request_id, team_id=context.team_id, feature=context.feature,
                   tenant=context.tenant, use_case_id=context.use_case_id, model=model,
                   worst_case_cost=worst_case_cost)


def usage_groundedness_set(*, request_id: str, groundedness: float) -> int:
    """Put a RAG answer's groundedness on its usage event when the event was written before the score was known
    (a call holding a budget reservation is written at once: ADR 0121). One UPDATE; no rollup reads the column,
    and a score already there stays. Returns how many rows changed (0 or 1)."""
    return UsageEvent.objects.filter(request_id=request_id, groundedness__isnull=True) \
        .update(groundedness=groundedness)


def usage_outcomes_set(*, outcomes: list, actor) -> dict:
    """The feedback API: mark events success / failure / unknown by request id; rollups follow in the same
    transaction. Each bad item is rejected with its index and reason; the good ones are applied.

    `outcomes`: [{"request_id": ..., "outcome": "success"}]. Only events of teams the actor may ingest for.
    """
    rejected, wanted = [], {}
    for index, item in enumerate(outcomes):
        if not isinstance(item, dict):
            rejected.append({"index": index, "request_id": None, "errors": ["each item must be a JSON object"]})
            continue
        rid, outcome = item.get("request_id"), item.get("outcome")
        errors = []
        if not isinstance(rid, str) or not rid:
            errors.append("request_id is required")
        elif problem := text_problem(rid):
            errors.append(f"request_id {problem}")
            rid = None
        if outcome not in Outcome.values:
            errors.append(f"outcome must be one of {', '.join(Outcome.values)}, not {outcome!r}")
        if not errors and rid in wanted:
            errors.append("request_id appears twice in this batch")
        if errors:
            rejected.append({"index": index, "request_id": rid if isinstance(rid, str) else None, "errors": errors})
        else:
            wanted[rid] = (index, outcome)
    updated = unchanged = 0
    if wanted:
        with transaction.atomic():
            rollups.lock_shared()
            visible = restrict(UsageEvent.objects.filter(request_id__in=list(wanted)), actor, Action.INGEST)
            rows = {e.request_id: e for e in visible.select_for_update(of=("self",)).order_by("id")}
            changes, events = [], []
            for rid, (index, outcome) in wanted.items():
                event = rows.get(rid)
                if event is None:
                    rejected.append({"index": index, "request_id": rid,
                                     "errors": ["no usage event with this request_id that you may update"]})
                    continue
                if event.outcome == outcome:
                    unchanged += 1
                    continue
                changes.append(({f: getattr(event, f) for f in ("occurred_at", "team_id", "feature", "tenant",
                                                                "model", "provider", "source", "prompt_name",
                                                                "prompt_version", "use_case_id")},
                                event.outcome, outcome))
                event.outcome = outcome
                events.append(event)
            if events:
                UsageEvent.objects.bulk_update(events, ["outcome"])
                rollups.rollup_outcome_shift(changes)
                updated = len(events)
                audit_record(action="usage.outcome", object_type="costs.usageevent",
                             object_id=events[0].pk, object_repr=f"outcomes of {updated} usage events",
                             team=events[0].team_id, actor=actor,
                             changes={"updated": updated, "request_ids": [e.request_id for e in events[:50]]})
    rejected.sort(key=lambda r: r["index"])
    return {"received": len(outcomes), "updated": updated, "unchanged": unchanged, "rejected": rejected}


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


def _price_values(input_per_mtok, output_per_mtok, cached_input_per_mtok, reasoning_per_mtok) -> dict:
    """The four per-million-token prices, checked: input and output required, cached and reasoning optional."""
    return {
        "input_per_mtok": _decimal(input_per_mtok, "input_per_mtok"),
        "output_per_mtok": _decimal(output_per_mtok, "output_per_mtok"),
        "cached_input_per_mtok": _decimal(cached_input_per_mtok, "cached_input_per_mtok", required=False),
        "reasoning_per_mtok": _decimal(reasoning_per_mtok, "reasoning_per_mtok", required=False),
    }


@transaction.atomic
def price_set(*, model_name: str, input_per_mtok, output_per_mtok, cached_input_per_mtok=None,
              reasoning_per_mtok=None, valid_from: datetime | None = None, provider: str = "",
              source: str = "admin", user=None) -> Price:
    """Start a new price for a model at `valid_from`, closing the open one. History is never rewritten."""
    valid_from = valid_from or timezone.now()
    values = _price_values(input_per_mtok, output_per_mtok, cached_input_per_mtok, reasoning_per_mtok)
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
    audit_record(action="price.set", obj=price, object_repr=model_name, actor=user,
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


@transaction.atomic
def price_correct(*, price: Price, input_per_mtok, output_per_mtok, cached_input_per_mtok=None,
                  reasoning_per_mtok=None, reason: str = "", user=None, reprice: bool = True):
    """Fix a wrong price in place (its period stays) and queue a re-pricing of the events it priced.

    Unlike price_set, this rewrites history on purpose: the old figures are in the audit event.
    Returns (price, job or None).
    """
    values = _price_values(input_per_mtok, output_per_mtok, cached_input_per_mtok, reasoning_per_mtok)
    if not reason.strip():
        raise ValidationError({"reason": "Say why the price was wrong: it goes in the audit log."})
    price = Price.objects.select_for_update().get(pk=price.pk)
    before = {k: None if getattr(price, k) is None else str(getattr(price, k)) for k in values}
    for key, value in values.items():
        setattr(price, key, value)
    price.source = f"corrected: {reason.strip()}"[:200]
    price.save(update_fields=[*values, "source"])
    audit_record(action="price.correct", obj=price, object_repr=price.model_name, actor=user,
                 changes={"before": before, "after": {k: None if v is None else str(v) for k, v in values.items()},
                          "reason": reason.strip(), "valid_from": price.valid_from, "valid_to": price.valid_to})
    job = None
    if reprice and price.valid_from < timezone.now():
        job = repricing_job_request(model_name=price.model_name, start=price.valid_from,
                                    end=min(price.valid_to or timezone.now(), timezone.now()) + timedelta(seconds=1),
                                    reason=f"price correction: {reason.strip()}", user=user)
    return price, job


@transaction.atomic
def price_add(*, model_name: str, input_per_mtok, output_per_mtok, cached_input_per_mtok=None,
              reasoning_per_mtok=None, valid_from: datetime | None = None, provider: str = "", user=None):
    """price_set for people: when the new price starts in the past (a model that was unpriced), re-price
    the events since then so they stop being unpriced. Returns (price, job or None)."""
    now = timezone.now()
    price = price_set(model_name=model_name, input_per_mtok=input_per_mtok, output_per_mtok=output_per_mtok,
                      cached_input_per_mtok=cached_input_per_mtok, reasoning_per_mtok=reasoning_per_mtok,
                      valid_from=valid_from or now, provider=provider, source="admin", user=user)
    job = None
    if price.valid_from < now - timedelta(minutes=1) and UsageRollup.objects.filter(
            granularity="day", model=model_name, bucket_start__gte=rollups.day_start(price.valid_from),
            unpriced__gt=0).exists():
        job = repricing_job_request(model_name=model_name, start=price.valid_from, end=now + timedelta(seconds=1),
                                    reason="new price with an earlier start", user=user)
    return price, job


# --- budgets -------------------------------------------------------------------------------------------------

BUDGET_FIELDS = ("name", "team", "feature", "tenant", "use_case_id", "amount", "period", "thresholds", "hard_cap", "is_active")


def _budget_validate(values: dict) -> dict:
    errors = {}
    name = (values.get("name") or "").strip()
    if not name:
        errors["name"] = "Give the budget a name."
    try:
        amount = Decimal(str(values.get("amount")))
        if not amount.is_finite() or amount <= 0:
            raise InvalidOperation
    except (InvalidOperation, TypeError, ValueError):
        errors["amount"] = "The amount must be a positive number of dollars."
        amount = None
    hard_cap = values.get("hard_cap")
    if hard_cap in ("", None):
        hard_cap = None
    else:
        try:
            hard_cap = Decimal(str(hard_cap))
            if not hard_cap.is_finite() or hard_cap <= 0:
                raise InvalidOperation
        except (InvalidOperation, TypeError, ValueError):
            errors["hard_cap"] = "The hard cap must be a positive number of dollars, or empty for none."
            hard_cap = None
    if amount is not None and hard_cap is not None and hard_cap < amount * Decimal("0.5"):
        errors["hard_cap"] = "A hard cap below half the budget is probably a typo; set the budget lower instead."
    period = values.get("period") or BudgetPeriodKind.MONTH
    if period not in BudgetPeriodKind.values:
        errors["period"] = f"Choose one of {', '.join(BudgetPeriodKind.values)}."
    thresholds = values.get("thresholds")
    if thresholds is None:
        thresholds = [50, 80, 100]
    if isinstance(thresholds, str):
        thresholds = [t.strip().rstrip("%") for t in thresholds.split(",") if t.strip()]
    try:
        thresholds = sorted({int(t) for t in thresholds})
        if any(t < 1 or t > 1000 for t in thresholds):
            raise ValueError
    except (TypeError, ValueError):
        errors["thresholds"] = "Thresholds are whole percentages from 1 to 1000, e.g. 50, 80, 100."
    for key in ("feature", "tenant"):
        if len(values.get(key) or "") > 120:
            errors[key] = "At most 120 characters."
    use_case_id = values.get("use_case_id")
    if isinstance(use_case_id, str):
        use_case_id = use_case_id.strip()
    if use_case_id in ("", None):
        use_case_id = None
    else:
        try:
            if isinstance(use_case_id, bool) or str(use_case_id) != str(int(use_case_id)):
                raise ValueError
            use_case_id = int(use_case_id)
            if not 0 < use_case_id < 2**63:
                raise ValueError
        except (TypeError, ValueError):
            errors["use_case_id"] = "The use case must be a use case's id (a positive whole number), or empty for all."
            use_case_id = None
    if errors:
        raise ValidationError(errors)
    return {"name": name[:120], "team": values.get("team"), "feature": (values.get("feature") or "").strip(),
            "tenant": (values.get("tenant") or "").strip(), "use_case_id": use_case_id, "amount": amount, "period": period,
            "thresholds": thresholds, "hard_cap": hard_cap, "is_active": values.get("is_active", True)}


def _require_budget_rights(actor, team) -> None:
    if team is None:
        if not is_admin(actor):
            raise PermissionDenied("Only admins may set budgets that span every team.")
    elif not can(actor, Action.MANAGE, team):
        raise PermissionDenied(f"Only owners of {team.name} (or admins) may set its budgets.")


def _budget_snapshot(budget: Budget) -> dict:
    return {"name": budget.name, "team": budget.team_id, "feature": budget.feature, "tenant": budget.tenant,
            "use_case_id": budget.use_case_id, "amount": str(budget.amount), "period": budget.period, "thresholds": list(budget.thresholds),
            "hard_cap": None if budget.hard_cap is None else str(budget.hard_cap), "is_active": budget.is_active}


def _duplicate_scope(values: dict, exclude: int | None = None) -> None:
    clash = Budget.objects.filter(team=values["team"], feature=values["feature"], tenant=values["tenant"],
                                  use_case_id=values["use_case_id"], period=values["period"])
    if exclude:
        clash = clash.exclude(pk=exclude)
    if clash.exists():
        raise ValidationError({"feature": "This team, feature, tenant and use case already have a budget with this "
                                          "period; edit that one."})


@transaction.atomic
def budget_create(*, actor, **values) -> Budget:
    """A new budget (team owners for their team, admins for any). Its counter opens with this period's spend."""
    clean = _budget_validate(values)
    _require_budget_rights(actor, clean["team"])
    _duplicate_scope(clean)
    budget = Budget.objects.create(**clean, created_by=actor if getattr(actor, "is_authenticated", False) else None)
    audit_record(action="budget.create", obj=budget, object_repr=budget.name, actor=actor,
                 changes=_budget_snapshot(budget))
    period_ensure(budget)
    return budget


@transaction.atomic
def budget_update(*, budget: Budget, actor, **values) -> Budget:
    """Change a budget. A new scope or period recounts its counters from the rollups."""
    budget = Budget.objects.select_for_update().get(pk=budget.pk)
    _require_budget_rights(actor, budget.team)
    merged = {**{k: getattr(budget, k) for k in BUDGET_FIELDS}, **values}
    clean = _budget_validate(merged)
    _require_budget_rights(actor, clean["team"])
    _duplicate_scope(clean, exclude=budget.pk)
    before = _budget_snapshot(budget)
    rescoped = any(clean[k] != getattr(budget, k) for k in ("team", "feature", "tenant", "use_case_id", "period"))
    for key, value in clean.items():
        setattr(budget, key, value)
    budget.updated_at = timezone.now()
    budget.save()
    after = _budget_snapshot(budget)
    audit_record(action="budget.update", obj=budget, object_repr=budget.name, actor=actor, changes=diff(before, after))
    if rescoped:
        budget.periods.filter(reservations__isnull=True).delete()
        counters_recount([budget.pk])
    return budget


@transaction.atomic
def budget_delete(*, budget: Budget, actor) -> None:
    _require_budget_rights(actor, budget.team)
    audit_record(action="budget.delete", obj=budget, object_repr=budget.name, actor=actor,
                 changes=_budget_snapshot(budget))
    budget.delete()
