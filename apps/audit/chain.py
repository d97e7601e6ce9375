"""The hash chain: canonical forms, the hash of an event, and the walk that finds the first broken link.

Pure functions over AuditEvent instances (saved or rebuilt from an export), so the database check and the
offline check of an exported file are the same code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Model
from django.utils.dateparse import parse_datetime

from apps.audit.models import HASH_VERSION, AuditEvent

GENESIS_HASH = "0" * 64
KNOWN_VERSIONS = (1, 2, 3)
KEYED_VERSION = 3  # HMAC-SHA256 under AUDIT_HMAC_KEY: rewriting the chain needs the key, not just the database


class ChainKeyMissing(Exception):
    """A keyed event cannot be checked (or written) without AUDIT_HMAC_KEY."""


def sealing_version() -> int:
    """What new events are sealed with: keyed when the deployment has a key."""
    return KEYED_VERSION if settings.AUDIT_HMAC_KEY else HASH_VERSION


def _json_default(value: Any):
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Model):
        return value.pk
    return str(value)


def _jsonb_stable(value: Any) -> Any:
    """Make a JSON value survive a PostgreSQL jsonb round trip unchanged, so its hash does too.

    jsonb stores numbers as numeric: 1e20 comes back as the integer 100000000000000000000 and -0.0 as 0.0;
    it rejects NaN, Infinity and the NUL character.
    """
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0:
            return 0.0
        if value.is_integer() and abs(value) >= 1e16:
            return int(value)
        return value
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_jsonb_stable(str(key)): _jsonb_stable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonb_stable(item) for item in value]
    return value


def normalise(changes: dict | None) -> dict:
    """Make a diff JSON-safe and jsonb-stable, the same way for the stored value and the hash."""
    plain = json.loads(json.dumps(changes or {}, default=_json_default))  # keys become strings
    return _jsonb_stable(plain)


def canonical_ip(ip: str | None) -> str | None:
    """An address in one spelling whatever PostgreSQL or Python print (both rewrite IPv6 text)."""
    if not ip:
        return None
    try:
        return ipaddress.ip_address(ip).packed.hex()
    except ValueError:
        return str(ip)


def _utc(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


def event_hash(event: AuditEvent, prev_hash: str | None = None) -> str:
    """The SHA-256 of an event's content and the hash before it, by the event's hash version."""
    prev = event.prev_hash if prev_hash is None else prev_hash
    version = event.hash_version or 1
    if version == 1:
        body = {
            "prev": prev, "at": event.occurred_at.isoformat(), "actor": event.actor_label,
            "user": event.actor_user_id, "token": event.actor_token_id, "action": event.action,
            "type": event.object_type, "id": event.object_id, "team": event.team_id, "changes": event.changes,
            "request": event.request_id, "ip": event.ip,
        }
    elif version in (2, KEYED_VERSION):
        body = {
            "v": version, "prev": prev, "at": _utc(event.occurred_at), "actor": event.actor_label,
            "user": event.actor_user_id, "token": event.actor_token_id, "action": event.action,
            "type": event.object_type, "id": event.object_id, "repr": event.object_repr, "team": event.team_id,
            "changes": event.changes, "request": event.request_id, "ip": canonical_ip(event.ip),
        }
    else:
        raise ValueError(f"unknown audit hash version {version}")
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    if version == KEYED_VERSION:
        if not settings.AUDIT_HMAC_KEY:
            raise ChainKeyMissing("AUDIT_HMAC_KEY is not set")
        return hmac.new(settings.AUDIT_HMAC_KEY.encode(), text.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(text.encode()).hexdigest()


def seal(event: AuditEvent, prev_hash: str) -> AuditEvent:
    """Link a new (unsaved) event to the chain."""
    event.hash_version = sealing_version()
    event.prev_hash = prev_hash
    event.hash = event_hash(event)
    return event


@dataclass(frozen=True)
class ChainReport:
    checked: int
    first_broken_id: int | None
    reason: str
    head_id: int | None = None  # the last good event: record (head_id, head_hash) outside the database
    head_hash: str = ""

    @property
    def ok(self) -> bool:
        return self.first_broken_id is None


def walk(events: Iterable[AuditEvent], *, start_prev: str = GENESIS_HASH, anchor: tuple[int, str] | None = None,
         on_progress: Callable[[int], None] | None = None, progress_every: int = 5000) -> ChainReport:
    """Check events in id order; name the first one whose link, content or version does not hold.

    `anchor` is an (id, hash) recorded earlier outside the database: the walk also fails if that event is
    gone or changed, which catches what the chain alone cannot: a deleted tail or a wholesale rewrite.
    """
    prev, checked, version, last_id = start_prev, 0, 0, None
    anchor_seen = anchor is None
    for event in events:
        if anchor is not None and not anchor_seen and event.pk >= anchor[0]:
            if event.pk > anchor[0]:
                return ChainReport(checked, event.pk, f"anchor event #{anchor[0]} is missing: it was deleted",
                                   last_id, prev)
            if event.hash != anchor[1]:
                return ChainReport(checked, event.pk, f"event #{event.pk} is not the anchored event: its hash "
                                                      "differs from the one recorded (the log was rewritten)",
                                   last_id, prev)
            anchor_seen = True
        if (event.hash_version or 1) not in KNOWN_VERSIONS:
            return ChainReport(checked, event.pk, f"event #{event.pk} has an unknown hash version "
                                                  f"{event.hash_version}", last_id, prev)
        if (event.hash_version or 1) < version:
            return ChainReport(checked, event.pk, f"event #{event.pk} uses an older hash version than the "
                                                  "event before it", last_id, prev)
        if event.prev_hash != prev:
            after = f"#{last_id}" if last_id is not None else "the start of the log"
            return ChainReport(checked, event.pk, f"event #{event.pk} does not link to {after}: an event between "
                                                  "them was deleted or changed", last_id, prev)
        try:
            altered = not hmac.compare_digest(event_hash(event), event.hash or "")
        except ChainKeyMissing:
            return ChainReport(checked, event.pk, f"event #{event.pk} is sealed with the audit key (version "
                                                  f"{KEYED_VERSION}) but AUDIT_HMAC_KEY is not set here: it "
                                                  "cannot be checked", last_id, prev)
        if altered:
            return ChainReport(checked, event.pk, f"event #{event.pk} was altered after it was written (or the "
                                                  "audit key differs from the one that sealed it)", last_id, prev)
        prev, version, last_id = event.hash, event.hash_version or 1, event.pk
        checked += 1
        if on_progress is not None and checked % progress_every == 0:
            on_progress(checked)
    if not anchor_seen:
        return ChainReport(checked, anchor[0], f"the log ends at #{last_id}, before the anchor event #{anchor[0]}: "
                                               "events were deleted from its end", last_id, prev)
    if on_progress is not None:
        on_progress(checked)
    return ChainReport(checked, None, "chain intact", last_id, prev if last_id is not None else "")


def event_to_dict(event: AuditEvent, *, include_ip: bool = True) -> dict:
    """One line of the JSONL export: every hashed field, so a full export can be checked offline."""
    return {
        "id": event.id, "occurred_at": event.occurred_at.isoformat(), "actor": event.actor_label,
        "actor_user_id": event.actor_user_id, "actor_token_id": event.actor_token_id, "action": event.action,
        "object_type": event.object_type, "object_id": event.object_id, "object_repr": event.object_repr,
        "team_id": event.team_id, "changes": event.changes, "request_id": event.request_id,
        "ip": event.ip if include_ip else None, "hash_version": event.hash_version,
        "prev_hash": event.prev_hash, "hash": event.hash,
    }


def event_from_dict(row: dict) -> AuditEvent:
    """Rebuild an (unsaved) event from an export line, for the offline check."""
    occurred_at = parse_datetime(row["occurred_at"])
    if occurred_at is None:
        raise ValueError(f"event {row.get('id')}: unreadable occurred_at {row['occurred_at']!r}")
    return AuditEvent(
        id=row["id"], occurred_at=occurred_at, actor_label=row["actor"], actor_user_id=row["actor_user_id"],
        actor_token_id=row["actor_token_id"], action=row["action"], object_type=row["object_type"],
        object_id=row["object_id"], object_repr=row.get("object_repr", ""), team_id=row["team_id"],
        changes=row["changes"], request_id=row["request_id"], ip=row.get("ip"),
        hash_version=row.get("hash_version", 1), prev_hash=row["prev_hash"], hash=row["hash"],
    )
