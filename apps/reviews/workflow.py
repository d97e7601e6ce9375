"""The one state machine of a use case: which transition leads where, from which states, and who may trigger it.

`transition()` is the only code that changes `UseCase.state`. It locks the row, re-checks the source state
with a conditional UPDATE (so a transition happens once however many callers race), writes the history row
and one audit event, and, after commit, drops the cached prompt status and tells the people concerned.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import ApiToken
from apps.accounts.permissions import Action, can, council_seats, is_admin, is_authenticated, user_of
from apps.audit.services import audit_record
from apps.core.request_context import acting_as, current
from apps.reviews.models import State, Transition, UseCase
from apps.reviews.prompt_status import forget_prompt_status

SYSTEM = "system"  # the portal itself (votes tallied, beat jobs, condition checks): actor None
TEAM = "team"  # engineers and owners of the owning team (and admins)
OWNER = "owner"  # team owners (and admins)
COUNCIL = "council"  # any council seat, never the submitter
ADMIN = "admin"

PRE_ACTIVE = (State.DRAFT, State.SUBMITTED, State.TRIAGE, State.IN_REVIEW, State.NEEDS_INFO, State.APPROVED,
              State.APPROVED_WITH_CONDITIONS, State.CONDITIONS_PENDING)
LIVE = (State.ACTIVE, State.REVIEW_DUE)  # approved and in force
BLOCKING = (State.EXPIRED, State.SUSPENDED)  # block promotion and resolve (423)
EDITABLE = (State.DRAFT, State.NEEDS_INFO, State.REVIEW_DUE, State.EXPIRED)  # the team may change the answers
CONDITION_STATES = (State.IN_REVIEW, State.APPROVED, State.APPROVED_WITH_CONDITIONS, State.CONDITIONS_PENDING,
                    State.ACTIVE, State.REVIEW_DUE)  # conditions may be set
WAIVER_STATES = (State.IN_REVIEW, State.APPROVED, State.APPROVED_WITH_CONDITIONS,
                 State.CONDITIONS_PENDING)  # required controls may be waived (before activation)


@dataclass(frozen=True)
class T:
    name: str
    sources: tuple[str, ...]
    target: str
    who: tuple[str, ...]
    label: str
    note_required: bool = False


TRANSITIONS: dict[str, T] = {t.name: t for t in (
    T("submit", (State.DRAFT, State.NEEDS_INFO, State.REVIEW_DUE, State.EXPIRED), State.SUBMITTED, (TEAM,),
      "Submit for review"),
    T("triage", (State.SUBMITTED,), State.TRIAGE, (SYSTEM,), "Triage"),
    T("start_review", (State.TRIAGE,), State.IN_REVIEW, (SYSTEM, COUNCIL), "Start review"),
    T("auto_reject", (State.TRIAGE,), State.REJECTED, (SYSTEM,), "Reject: prohibited practice"),
    T("request_info", (State.IN_REVIEW,), State.NEEDS_INFO, (COUNCIL,), "Ask for more information",
      note_required=True),
    T("approve", (State.IN_REVIEW,), State.APPROVED, (SYSTEM,), "Approve"),
    T("approve_with_conditions", (State.IN_REVIEW,), State.APPROVED_WITH_CONDITIONS, (SYSTEM,),
      "Approve with conditions"),
    T("reject", (State.IN_REVIEW,), State.REJECTED, (SYSTEM,), "Reject"),
    T("set_conditions", (State.APPROVED_WITH_CONDITIONS,), State.CONDITIONS_PENDING, (SYSTEM, COUNCIL),
      "Conditions set"),
    T("activate", (State.APPROVED, State.CONDITIONS_PENDING), State.ACTIVE, (SYSTEM,), "Activate"),
    T("mark_review_due", (State.ACTIVE,), State.REVIEW_DUE, (SYSTEM,), "Review due"),
    T("expire", (State.ACTIVE, State.REVIEW_DUE), State.EXPIRED, (SYSTEM,), "Expire"),
    T("suspend", (State.ACTIVE, State.REVIEW_DUE), State.SUSPENDED, (SYSTEM, COUNCIL, ADMIN), "Suspend",
      note_required=True),
    T("reinstate", (State.SUSPENDED,), State.ACTIVE, (COUNCIL, ADMIN), "Reinstate", note_required=True),
    T("withdraw", PRE_ACTIVE, State.WITHDRAWN, (TEAM,), "Withdraw"),
    T("retire", (State.ACTIVE, State.REVIEW_DUE, State.EXPIRED, State.SUSPENDED, State.REJECTED), State.RETIRED,
      (OWNER, ADMIN), "Retire"),
)}


class TransitionRefused(ValidationError):
    """The use case is not in a state this transition starts from (or another caller moved it first)."""


def submitter_ids(use_case: UseCase) -> set[int]:
    """The people who may never review this use case: its creator and everyone who submitted it."""
    ids = {use_case.created_by_id} if use_case.created_by_id else set()
    ids |= {uid for uid in use_case.submissions.values_list("submitted_by_id", flat=True) if uid}
    return ids


def holds(actor, role: str, use_case: UseCase) -> bool:
    if role == SYSTEM:
        return actor is None
    if actor is None or not is_authenticated(actor):
        return False
    if role == TEAM:
        return can(actor, Action.CHANGE, use_case)
    if role == OWNER:
        return can(actor, Action.MANAGE, use_case)
    if role == ADMIN:
        return is_admin(actor)
    if role == COUNCIL:
        return (not isinstance(actor, ApiToken) and bool(council_seats(actor))
                and actor.pk not in submitter_ids(use_case))
    return False


def may(actor, name: str, use_case: UseCase) -> bool:
    t = TRANSITIONS[name]
    return use_case.state in t.sources and any(holds(actor, role, use_case) for role in t.who)


def available(actor, use_case: UseCase) -> list[T]:
    """The transitions this (human) actor may trigger now: the buttons on the page."""
    return [t for t in TRANSITIONS.values() if t.name != "submit" and may(actor, t.name, use_case)]


def _label(actor) -> str:
    if actor is None:
        return "system"
    return getattr(actor, "label", None) or actor.get_username()


def transition(use_case: UseCase, name: str, *, actor=None, note: str = "", changes: dict | None = None) -> UseCase:
    """Move the use case along `name`. Raises TransitionRefused or PermissionDenied and changes nothing."""
    t = TRANSITIONS[name]
    with transaction.atomic():
        locked = UseCase.objects.select_for_update().get(pk=use_case.pk)
        if locked.state not in t.sources:
            raise TransitionRefused(
                f"Cannot {t.label.lower()} a use case that is {State(locked.state).label.lower()}.")
        if not any(holds(actor, role, locked) for role in t.who):
            who = " or ".join(t.who)
            raise PermissionDenied(f"Only {who} may {t.label.lower()} this use case.")
        note = (note or "").strip()
        if t.note_required and not note:
            raise ValidationError({"note": [f"Say why ({t.label.lower()} needs a note)."]})
        now = timezone.now()
        moved = UseCase.objects.filter(pk=locked.pk, state=locked.state).update(state=t.target, updated_at=now)
        if moved != 1:  # pragma: no cover - the row lock makes this unreachable; kept as the guard of last resort
            raise TransitionRefused("Another change moved this use case first; reload the page.")
        user = user_of(actor)
        Transition.objects.create(use_case=locked, name=name, from_state=locked.state, to_state=t.target,
                                  actor=user if getattr(user, "pk", None) else None, actor_label=_label(actor),
                                  note=note, occurred_at=now)
        event = dict(action=f"use_case.{name}", obj=locked,
                     changes={"state": [locked.state, t.target], **({"note": note} if note else {}),
                              **(changes or {})})
        if actor is None:  # the portal decided (votes tallied, a beat job): say "system", keep the request id
            ctx = current()
            with acting_as(None, request_id=ctx.request_id if ctx else None, ip=ctx.ip if ctx else None):
                audit_record(**event)
        else:
            audit_record(**event, actor=actor)
        transaction.on_commit(lambda: forget_prompt_status(locked.pk))
    use_case.state, use_case.updated_at = t.target, now
    return use_case
