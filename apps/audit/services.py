"""The one audit helper: `audit_record(...)` inside the transaction of the change it describes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from apps.audit.models import AuditEvent
from portal.request_context import current

GENESIS_HASH = "0" * 64
_CHAIN_LOCK_KEY = 7_301_042  # pg_advisory_xact_lock key: one writer extends the chain at a time


def _json_default(value: Any):
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    if isinstance(value, Model):
        return value.pk
    return str(value)


def normalise(changes: dict | None) -> dict:
    """Make a diff JSON-safe, the same way for the stored value and the hash."""
    return json.loads(json.dumps(changes or {}, default=_json_default, sort_keys=True))


def compute_hash(prev_hash: str, *, occurred_at: dt.datetime, actor_label: str, actor_user_id, actor_token_id,
                 action: str, object_type: str, object_id: str, team_id, changes: dict, request_id: str,
                 ip: str | None) -> str:
    body = json.dumps(
        {
            "prev": prev_hash, "at": occurred_at.isoformat(), "actor": actor_label, "user": actor_user_id,
            "token": actor_token_id, "action": action, "type": object_type, "id": object_id,
            "team": team_id, "changes": changes, "request": request_id, "ip": ip,
        },
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


def event_hash(event: AuditEvent, prev_hash: str | None = None) -> str:
    return compute_hash(
        event.prev_hash if prev_hash is None else prev_hash,
        occurred_at=event.occurred_at, actor_label=event.actor_label, actor_user_id=event.actor_user_id,
        actor_token_id=event.actor_token_id, action=event.action, object_type=event.object_type,
        object_id=event.object_id, team_id=event.team_id, changes=event.changes,
        request_id=event.request_id, ip=event.ip,
    )


@dataclass(frozen=True)
class Actor:
    user: Any = None
    token: Any = None

    @property
    def label(self) -> str:
        if self.token is not None:
            return self.token.label
        if self.user is not None and getattr(self.user, "is_authenticated", False):
            return self.user.get_username()
        return "system"


def diff(before: dict, after: dict) -> dict:
    """{field: [old, new]} for the fields that changed."""
    keys = set(before) | set(after)
    return {key: [before.get(key), after.get(key)] for key in sorted(keys) if before.get(key) != after.get(key)}


def audit_record(*, action: str, obj: Model | None = None, team=None, changes: dict | None = None,
                 object_type: str | None = None, object_id: str | int | None = None,
                 object_repr: str | None = None, user=None, token=None) -> AuditEvent:
    """Append one event. Call it inside the transaction of the change, last, so the chain lock is brief."""
    ctx = current()
    if user is None and token is None and ctx is not None:
        user, token = ctx.user, ctx.token
    if token is not None and user is None:
        user = token.user
    actor = Actor(user=user, token=token)
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = obj.pk if object_id is None else object_id
        object_repr = object_repr or str(obj)[:200]
        if team is None:
            team_id = obj.pk if obj._meta.label_lower == "accounts.team" else getattr(obj, "team_id", None)
        else:
            team_id = getattr(team, "pk", team)
    else:
        team_id = getattr(team, "pk", team)
    changes = normalise(changes)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
        last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
        event = AuditEvent(
            occurred_at=timezone.now(),
            actor_user_id=getattr(user, "pk", None) if getattr(user, "is_authenticated", False) else None,
            actor_token_id=getattr(token, "pk", None),
            actor_label=actor.label,
            action=action,
            object_type=object_type or "",
            object_id="" if object_id is None else str(object_id),
            object_repr=(object_repr or "")[:200],
            team_id=team_id,
            changes=changes,
            request_id=ctx.request_id if ctx else "",
            ip=ctx.ip if ctx else None,
            prev_hash=last or GENESIS_HASH,
        )
        event.hash = event_hash(event)
        event.save(force_insert=True)
    return event


@dataclass(frozen=True)
class ChainReport:
    checked: int
    first_broken_id: int | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.first_broken_id is None


def audit_chain_verify(batch_size: int = 5000) -> ChainReport:
    """Walk the chain in id order; name the first event whose link or content does not match."""
    prev = GENESIS_HASH
    checked = 0
    last_id = 0
    while True:
        batch = list(AuditEvent.objects.filter(id__gt=last_id).order_by("id")[:batch_size])
        if not batch:
            return ChainReport(checked, None, "chain intact")
        for event in batch:
            if event.prev_hash != prev:
                return ChainReport(checked, event.pk, f"event #{event.pk} does not link to the event before it")
            if event_hash(event) != event.hash:
                return ChainReport(checked, event.pk, f"event #{event.pk} was altered after it was written")
            prev = event.hash
            checked += 1
            last_id = event.pk
