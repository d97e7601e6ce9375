"""Sampled body storage (ADR 0079): a key that opts in (`store_bodies`, `body_sample_percent`) keeps the request
and response bodies of a share of its answered chat calls, PII-redacted, for GATEWAY_BODY_RETENTION_DAYS.

The hot path only draws the sample and, when drawn, puts the bodies on the recording stream as an entry of
their own (`recording.keep_body`); the recorder writer redacts them (apps.guardrails' `redact_values`) and
inserts them here, idempotent by request id (`samples_write`). Nothing unredacted reaches PostgreSQL, and a
key that did not opt in costs one attribute read per request. Bodies are read on the request log's detail
page by whoever may read the key's traffic; from there evals adds one to a dataset (apps/evals reads
`selectors.body_get`; the button comes through `registry.register_body_action`).
"""

from __future__ import annotations

import json
import logging
import random

from django.db import DatabaseError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.gateway.keys import KeyInfo
from apps.gateway.models import GatewayBody, GatewayKey
from apps.guardrails import redact_values

log = logging.getLogger(__name__)
_draw = random.Random()


def sampled(info: KeyInfo) -> bool:
    """Whether this request's bodies are kept: the key opted in and the draw falls in its share."""
    if not info.store_bodies or info.body_sample_percent <= 0:
        return False
    return info.body_sample_percent >= 100 or _draw.random() * 100 < info.body_sample_percent


def sample_payload(info: KeyInfo, *, context, call, result) -> bytes:
    """The stream entry of one sampled call (unredacted: the writer redacts before anything is stored)."""
    request = call.request
    parameters = {k: v for k, v in (("temperature", request.temperature), ("max_tokens", request.max_tokens),
                                    ("response_format", request.response_format), ("tools", request.tools))
                  if v is not None}
    parameters.update(request.extra)
    return json.dumps({
        "request_id": context.request_id, "key_id": info.id, "team_id": info.team_id, "model": call.model,
        "prompt": f"{context.prompt_name} v{context.prompt_version}" if context.prompt_name else "",
        "occurred_at": timezone.now().isoformat(),
        "request": {"messages": request.messages, "metadata": call.metadata, "parameters": parameters},
        "response": {"content": result.text, "finish_reason": result.finish_reason,
                     "tool_calls": [{"name": t.name, "arguments": t.arguments} for t in result.tool_calls]},
    }, default=str, separators=(",", ":")).encode()


def samples_write(payloads: list[bytes]) -> int:
    """Redact and insert sampled bodies (the recorder writer, after its batch's ledger rows). A request id already
    stored is skipped (at least once delivery); an unreadable entry, or one whose key is gone, is dropped, named
    by nothing but the count: bodies are best effort and never hold up the stream."""
    rows, unreadable = [], 0
    for payload in payloads:
        try:
            data = json.loads(payload)
            request, found_in = redact_values(data["request"])
            response, found_out = redact_values(data["response"])
            model, _n = redact_values(str(data.get("model", ""))[:200])
            rows.append(GatewayBody(
                request_id=str(data["request_id"])[:100], key_id=int(data["key_id"]), team_id=int(data["team_id"]),
                occurred_at=parse_datetime(data["occurred_at"]) or timezone.now(), model=model,
                request={**request, "prompt": data.get("prompt", "")}, response=response,
                redactions=found_in + found_out + _n))
        except (ValueError, KeyError, TypeError):
            unreadable += 1
    if unreadable:
        log.error("%d sampled gateway bodies were unreadable and dropped", unreadable)
    known = set(GatewayKey.objects.filter(pk__in={r.key_id for r in rows}).values_list("pk", flat=True))
    rows = [r for r in rows if r.key_id in known]  # a key deleted since (with its team): nothing to keep
    if rows:
        try:
            with transaction.atomic():
                GatewayBody.objects.bulk_create(rows, ignore_conflicts=True, batch_size=200)
        except DatabaseError:  # best effort: a body must never hold up the ledger's stream
            log.exception("%d sampled gateway bodies could not be stored and were dropped", len(rows))
            return 0
    return len(rows)
