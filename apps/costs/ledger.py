"""The one write path of the usage ledger: events, rollups, budget counters, alerts — one transaction.

    inserted = ledger_write(rows)

`rows` are validated, priced dicts (see COLUMNS). One multi-row INSERT … ON CONFLICT (request_id) DO NOTHING
RETURNING tells which rows are new; only those reach the rollups (one upsert for both tables) and the budget
counters, so a resent batch changes nothing. Callers: the ingestion API (batches of up to 1,000), OTLP, and
usage_event_record (the portal's own calls, one at a time, which also settle budget reservations).

Where it sits in costs (each module imports only those below it; tests/portal/test_layers.py checks there
is no circle): models, conf, pricing, db < rollups < budgets < alerts < ledger < ingest, services,
repricing < tasks < hooks. The ledger is the one place that drives rollups, budgets and alerts together.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from apps.audit.services import audit_record
from apps.costs import alerts, budgets, db, rollups

COLUMNS = (
    ("occurred_at", "timestamptz"), ("request_id", "text"), ("team_id", "bigint"), ("feature", "text"),
    ("use_case_id", "bigint"), ("tenant", "text"), ("user_id", "bigint"), ("api_token_id", "bigint"),
    ("provider", "text"), ("model", "text"), ("operation", "text"), ("prompt_name", "text"),
    ("prompt_version", "int"), ("collection_id", "bigint"), ("source", "text"), ("input_tokens", "int"),
    ("output_tokens", "int"), ("cached_input_tokens", "int"), ("reasoning_tokens", "int"), ("cost", "numeric"),
    ("price_id", "bigint"), ("latency_ms", "int"), ("status", "text"), ("error_type", "text"),
    ("outcome", "text"), ("ingested_at", "timestamptz"), ("gateway_key_id", "bigint"), ("alias", "text"),
    ("deployment", "text"), ("upstream_ms", "int"), ("ttft_ms", "int"), ("cache_hit", "bool"),
    ("fallbacks", "smallint"), ("cache_saving", "numeric"), ("guardrail_actions", "jsonb"),
    ("experiment_id", "bigint"), ("experiment_arm", "text"), ("experiment_unit", "text"),
    ("groundedness", "float8"), ("switch_id", "bigint"),
)
_NAMES = ", ".join(name for name, _ in COLUMNS)
_UNNEST = ", ".join(f"%s::{kind}[]" for _, kind in COLUMNS)
_INSERT = (f"INSERT INTO costs_usageevent ({_NAMES}) SELECT * FROM unnest({_UNNEST}) "
           "ON CONFLICT (request_id) DO NOTHING RETURNING id, request_id")
DEFAULTS = {
    "team_id": None, "feature": "", "use_case_id": None, "tenant": "", "user_id": None, "api_token_id": None,
    "provider": "", "operation": "chat", "prompt_name": "", "prompt_version": None, "collection_id": None,
    "input_tokens": 0, "output_tokens": 0, "cached_input_tokens": 0, "reasoning_tokens": 0, "cost": None,
    "price_id": None, "latency_ms": 0, "status": "ok", "error_type": "", "outcome": "unknown",
    "cache_savings": Decimal(0), "gateway_key_id": None, "alias": "", "deployment": "", "upstream_ms": None,
    "ttft_ms": None, "cache_hit": False, "fallbacks": 0, "cache_saving": None,
    "guardrail_actions": None, "experiment_id": None, "experiment_arm": "", "experiment_unit": "",
    "groundedness": None,
    "switch_id": None,
}


def _jsonb(value):
    return None if value is None else Jsonb(value)


def ledger_write(rows: list[dict], *, settle: bool = False, audit: dict | None = None,
                 now: datetime | None = None) -> list[dict]:
    """Insert the rows not already in the ledger and account for exactly those. Returns the inserted rows.

    `settle`: release budget reservations made under these request ids (the portal's own calls).
    `audit`: keyword arguments of one audit_record for the whole batch, written only if something was new.
    """
    if not rows:
        return []
    now = now or timezone.now()
    for r in rows:
        r.setdefault("ingested_at", now)
    columns = [[_jsonb(r[name]) for r in rows] if kind == "jsonb" else [r[name] for r in rows]
               for name, kind in COLUMNS]
    with transaction.atomic(), connection.cursor() as cursor:
        rollups.lock_shared()
        new_ids = {request_id: pk for pk, request_id in db.execute_fast(_INSERT, columns)}
        inserted = []
        for r in rows:
            pk = new_ids.get(r["request_id"])
            if pk is not None:
                r["id"] = pk
                inserted.append(r)
        settle_ids = [r["request_id"] for r in rows] if settle else []  # a duplicate still frees its hold
        # Release and read budgets first: the rollup upsert locks rows every concurrent call shares.
        begun = budgets.settle_begin(cursor, inserted=inserted, settle_request_ids=settle_ids)
        if inserted:
            sums, hist = rollups.rollup_deltas(inserted, now)
            rollups.rollups_apply(sums, hist)
        crossings = budgets.settle_and_count(cursor, inserted=inserted, settle_request_ids=settle_ids, begun=begun)
        if crossings:
            alerts.thresholds_check(crossings)
        if audit and inserted:
            audit = dict(audit)
            changes = audit.pop("changes", {})
            audit_record(**audit, changes={**changes, "accepted": len(inserted)})
    return inserted
