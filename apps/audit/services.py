"""The one audit helper: `audit_record(...)` inside the transaction of the change it describes.

The chain: each event stores the hash of the one before. Writers take a transaction-scoped advisory lock
before reading the last hash, so concurrent transactions extend one chain in id order; the lock is held
until the caller's transaction ends, which is why audit_record should be the last write of a service.
This relies on READ COMMITTED (Django's default): each statement after the lock sees the last commit.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from apps.accounts.models import ApiToken
from apps.audit.chain import (  # noqa: F401  (re-exported: the public names of the chain)
    GENESIS_HASH,
    ChainReport,
    event_hash,
    normalise,
    seal,
    walk,
)
from apps.audit.models import AuditEvent, ChainVerification, VerificationStatus
from apps.core.request_context import current
from apps.core.tasks import task_queue

log = logging.getLogger(__name__)

_CHAIN_LOCK_KEY = 7_301_042  # pg_advisory_xact_lock key: one writer extends the chain at a time
_MAX = {field: AuditEvent._meta.get_field(field).max_length
        for field in ("actor_label", "action", "object_type", "object_id", "object_repr", "request_id")}


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


def split_actor(actor) -> tuple[Any, Any]:
    """(user, token) of whoever acts: a token acts for its owner; a user (or AnonymousUser) for themself."""
    if isinstance(actor, ApiToken):
        return actor.user, actor
    return actor, None


def diff(before: dict, after: dict) -> dict:
    """{field: [old, new]} for the fields that changed."""
    keys = set(before) | set(after)
    return {key: [before.get(key), after.get(key)] for key in sorted(keys) if before.get(key) != after.get(key)}


def _valid_ip(ip: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(ip)) if ip else None
    except ValueError:
        return None


def audit_record(*, action: str, obj: Model | None = None, team=None, changes: dict | None = None,
                 object_type: str | None = None, object_id: str | int | None = None,
                 object_repr: str | None = None, actor=None, user=None, token=None) -> AuditEvent:
    """Append one event. Call it inside the transaction of the change, last, so the chain lock is brief.

    The actor is `actor` (a User, an ApiToken, or None) if given, else the request context (web request,
    task or command), else "system". `user=`/`token=` are the older spelling of the same thing (kept for
    callers that hold the two apart); give either `actor` or them, not both.
    `team` defaults to the object's team (or the object itself when it is a Team).
    """
    if not action or len(action) > _MAX["action"]:
        raise ValueError(f"audit action must be 1 to {_MAX['action']} characters, got {action!r}")
    if actor is not None:
        if user is not None or token is not None:
            raise TypeError("audit_record takes actor= or user=/token=, not both")
        user, token = split_actor(actor)
    ctx = current()
    if user is None and token is None and ctx is not None:
        user, token = ctx.user, ctx.token
    if token is not None and user is None:
        user = token.user
    actor = Actor(user=user, token=token)
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = obj.pk if object_id is None else object_id
        object_repr = object_repr or str(obj)
        if team is None:
            team_id = obj.pk if obj._meta.label_lower == "accounts.team" else getattr(obj, "team_id", None)
        else:
            team_id = getattr(team, "pk", team)
    else:
        team_id = getattr(team, "pk", team)
    object_id = "" if object_id is None else str(object_id)
    if len(object_id) > _MAX["object_id"]:
        raise ValueError(f"audit object_id longer than {_MAX['object_id']} characters: {object_id!r}")
    changes = normalise(changes)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
        last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
        event = AuditEvent(
            occurred_at=timezone.now(),  # after the lock, so time follows the chain
            actor_user_id=getattr(user, "pk", None) if getattr(user, "is_authenticated", False) else None,
            actor_token_id=getattr(token, "pk", None),
            actor_label=actor.label[: _MAX["actor_label"]],
            action=action,
            object_type=(object_type or "")[: _MAX["object_type"]],
            object_id=object_id,
            object_repr=(object_repr or "")[: _MAX["object_repr"]],
            team_id=team_id,
            changes=changes,
            request_id=(ctx.request_id if ctx else "")[: _MAX["request_id"]],
            ip=_valid_ip(ctx.ip) if ctx else None,
        )
        seal(event, last or GENESIS_HASH)
        event.save(force_insert=True)
    return event


def _events_in_order(batch_size: int):
    last_id = 0
    while True:
        batch = list(AuditEvent.objects.filter(id__gt=last_id).order_by("id")[:batch_size])
        if not batch:
            return
        yield from batch
        last_id = batch[-1].pk


def audit_chain_verify(batch_size: int = 5000, *, anchor: tuple[int, str] | None = None,
                       on_progress=None) -> ChainReport:
    """Walk the stored chain in id order; name the first event whose link or content does not match.

    Reads in batches of `batch_size` (memory stays flat); events appended meanwhile are checked too.
    """
    return walk(_events_in_order(batch_size), anchor=anchor, on_progress=on_progress, progress_every=batch_size)


# --- verification runs (the audit page's "verify chain" indicator; the nightly schedule) ---------------------


def chain_verification_latest() -> ChainVerification | None:
    return ChainVerification.objects.select_related("requested_by").first()


@transaction.atomic
def chain_verification_request(*, requested_by=None) -> ChainVerification:
    """Queue a run, unless one is already queued or running: then that one is returned."""
    active = ChainVerification.objects.select_for_update().filter(
        status__in=[VerificationStatus.QUEUED, VerificationStatus.RUNNING]).first()
    if active is not None and not active.is_stalled:
        return active
    run = ChainVerification.objects.create(requested_by=requested_by if getattr(requested_by, "pk", None) else None)

    def enqueue():
        try:
            task_queue("apps.audit.tasks.audit_chain_verify_task", run.pk)
        except Exception as exc:  # noqa: BLE001 - a broker outage must show on the page, not as a 500
            log.exception("could not queue audit chain verification %s", run.pk)
            ChainVerification.objects.filter(pk=run.pk, status=VerificationStatus.QUEUED).update(
                status=VerificationStatus.FAILED, finished_at=timezone.now(),
                error=f"Could not queue the run ({type(exc).__name__}): is the broker up?")

    transaction.on_commit(enqueue)
    return run


def chain_verification_run(verification_id: int) -> ChainVerification | None:
    """Run one queued verification: claim it, walk the chain with progress, record the result as one event."""
    claimed = ChainVerification.objects.filter(
        pk=verification_id, status=VerificationStatus.QUEUED,
    ).update(status=VerificationStatus.RUNNING, started_at=timezone.now(), progress_total=AuditEvent.objects.count())
    if not claimed:
        return None  # gone, or another worker has it
    run = ChainVerification.objects.select_related("requested_by").get(pk=verification_id)

    def progress(done: int) -> None:
        ChainVerification.objects.filter(pk=run.pk).update(progress_done=done)

    try:
        report = audit_chain_verify(on_progress=progress)
    except Exception as exc:
        log.exception("audit chain verification %s failed", run.pk)
        ChainVerification.objects.filter(pk=run.pk).update(
            status=VerificationStatus.FAILED, finished_at=timezone.now(), error=f"{type(exc).__name__}: {exc}")
        raise
    with transaction.atomic():
        ChainVerification.objects.filter(pk=run.pk).update(
            status=VerificationStatus.DONE, finished_at=timezone.now(), progress_done=report.checked,
            intact=report.ok, first_broken_id=report.first_broken_id, reason=report.reason,
            head_id=report.head_id, head_hash=report.head_hash or "",
        )
        audit_record(action="audit.chain.verify", obj=run, object_repr=f"chain verification #{run.pk}",
                     user=run.requested_by,
                     changes={"intact": report.ok, "checked": report.checked,
                              "first_broken_id": report.first_broken_id, "reason": report.reason,
                              "head_id": report.head_id, "head_hash": report.head_hash})
    run.refresh_from_db()
    return run
