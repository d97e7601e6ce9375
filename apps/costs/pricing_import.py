"""Import prices from LiteLLM's model_prices_and_context_window.json (the de-facto public price list).

Entries look like {"gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
"cache_read_input_token_cost": 1.25e-06, "output_cost_per_reasoning_token": ..., "litellm_provider": "openai",
"mode": "chat"}}. Prices are per token there, per million tokens here. Keys with a provider prefix
("azure/gpt-4o") become provider-specific prices ("azure"); plain keys are provider-agnostic.

Validate everything first, write in one transaction: a bad entry is reported (key + reason) and nothing is
written unless the caller asks to skip bad entries. Unchanged prices are left alone; a changed price starts a
new effective-dated row (price_set), audited one by one plus one summary event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.costs.models import Price
from apps.costs.services import price_set

MODES = {"chat", "completion", "responses", "embedding"}
PER_TOKEN_FIELDS = {
    "input_per_mtok": "input_cost_per_token",
    "output_per_mtok": "output_cost_per_token",
    "cached_input_per_mtok": "cache_read_input_token_cost",
    "reasoning_per_mtok": "output_cost_per_reasoning_token",
}
MILLION = Decimal(1_000_000)
Q6 = Decimal("0.000001")


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # not a priced chat/embedding model
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _per_mtok(value, key: str, name: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} is not a number")
    try:
        number = Decimal(str(value)) * MILLION
    except InvalidOperation:
        raise ValueError(f"{name} {value!r} is not a number")
    if number < 0 or not number.is_finite():
        raise ValueError(f"{name} cannot be negative")
    return number.quantize(Q6)


def parse_litellm(data, *, only: set[str] | None = None) -> tuple[list[dict], ImportReport]:
    report = ImportReport()
    rows = []
    if not isinstance(data, dict):
        report.errors.append(("(file)", "expected a JSON object of model name → prices"))
        return rows, report
    for key, entry in data.items():
        if key == "sample_spec":
            continue
        provider, _, name = key.rpartition("/") if "/" in key else ("", "", key)
        if only is not None and key not in only and name not in only:
            continue
        if not isinstance(entry, dict):
            report.errors.append((key, "expected an object"))
            continue
        mode = entry.get("mode", "chat")
        if mode not in MODES:
            report.skipped.append((key, f"mode {mode!r} is not priced per token here"))
            continue
        if entry.get("input_cost_per_token") is None:
            report.skipped.append((key, "no input_cost_per_token"))
            continue
        try:
            values = {field_name: _per_mtok(entry.get(src), key, src) for field_name, src in PER_TOKEN_FIELDS.items()}
        except ValueError as exc:
            report.errors.append((key, str(exc)))
            continue
        if values["output_per_mtok"] is None:
            values["output_per_mtok"] = Decimal(0)  # embeddings
        if len(name) > 200 or len(provider) > 50:
            report.errors.append((key, "model or provider name too long"))
            continue
        rows.append({"key": key, "model_name": name, "provider": provider, **values})
    return rows, report


def prices_import_litellm(data, *, user=None, valid_from: datetime | None = None, only: set[str] | None = None,
                          skip_bad: bool = False) -> ImportReport:
    """Import (or update) prices. With errors and not `skip_bad`, nothing is written and the report says why."""
    rows, report = parse_litellm(data, only=only)
    if report.errors and not skip_bad:
        return report
    valid_from = valid_from or timezone.now()
    with transaction.atomic():
        current = {(p.model_name, p.provider): p for p in Price.objects.filter(valid_to__isnull=True)}
        for row in rows:
            existing = current.get((row["model_name"], row["provider"]))
            if existing is not None and all(getattr(existing, f) == row[f] for f in PER_TOKEN_FIELDS):
                report.unchanged.append(row["key"])
                continue
            if existing is not None and existing.valid_from >= valid_from:
                report.errors.append((row["key"], f"a price starting {existing.valid_from:%Y-%m-%d %H:%M} exists; "
                                                  "import with a later 'valid from'"))
                continue
            price_set(model_name=row["model_name"], provider=row["provider"], valid_from=valid_from,
                      source="LiteLLM import", user=user,
                      **{f: row[f] for f in PER_TOKEN_FIELDS})
            report.created.append(row["key"])
        if report.errors and not skip_bad:
            transaction.set_rollback(True)
            report.created.clear()
            return report
        if report.created:
            audit_record(action="price.import", object_type="costs.price", object_repr="LiteLLM price list",
                         actor=user, changes={"created": len(report.created), "unchanged": len(report.unchanged),
                                             "skipped": len(report.skipped), "models": report.created[:100]})
    return report
