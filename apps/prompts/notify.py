"""Who hears about a promotion request, through the portal's one inbox and e-mail (apps.notifications).

Approvers are told a request waits for them when it opens; the requester is told when it is approved,
rejected, applied (the label moved) or cancelled by someone else. The header's "waiting on you" count comes
from `waiting()`, registered with apps.notifications.waiting at start-up.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.urls import reverse

from apps.notifications import services as notifications
from apps.notifications.waiting import Waiting
from apps.prompts.gates import eligible_approvers, gate_context
from apps.prompts.selectors import promotion_requests_waiting_on


def _link(request) -> str:
    return reverse("prompts:request", kwargs={"pk": request.pk})


def _what(request) -> str:
    frm = f"v{request.from_version.number}" if request.from_version_id else "—"
    return f"{request.prompt.name} {request.label} {frm} → v{request.to_version.number}"


def approvers(request) -> list:
    """The people whose approval the approvals check would count, now."""
    ids = eligible_approvers(gate_context(request))
    return list(get_user_model().objects.filter(pk__in=ids, is_active=True))


def promotion_opened(request) -> None:
    kind = "rollback" if request.kind == "rollback" else "promotion"
    body = f"{request.requester_label} asks to move {request.label} of {request.prompt.name} to version " \
           f"{request.to_version.number}."
    if request.reason:
        body += f"\nWhy: {request.reason}"
    notifications.notify(users=approvers(request), kind=f"prompt.{kind}.waiting",
                         title=f"Review wanted: {_what(request)}", body=body, link=_link(request),
                         dedupe_key=f"prompt.promotion.waiting:{request.pk}")


def _tell_requester(request, *, actor, kind: str, title: str, body: str = "", key: str) -> None:
    requester = request.requested_by
    if requester is None or (isinstance(actor, get_user_model()) and actor.pk == requester.pk):
        return  # a token's request has nobody to tell; nobody is told about their own act
    notifications.notify(users=[requester], kind=kind, title=title, body=body, link=_link(request),
                         dedupe_key=f"prompt.promotion.{key}:{request.pk}")


def promotion_approved(request, *, user, comment: str, applied: bool, waiting_on: list[str]) -> None:
    if applied:
        promotion_applied(request, actor=user, how=f"approved by {user.get_username()}")
        return
    body = f"{user.get_username()} approved it" + (f": “{comment}”" if comment else ".")
    if waiting_on:
        body += f"\nStill waiting on: {', '.join(waiting_on)}."
    _tell_requester(request, actor=user, kind="prompt.promotion.approved",
                    title=f"Approved by {user.get_username()}: {_what(request)}", body=body,
                    key=f"approved:{user.pk}")


def promotion_applied(request, *, actor, how: str) -> None:
    _tell_requester(request, actor=actor, kind="prompt.promotion.applied",
                    title=f"{request.label} moved: {_what(request)}",
                    body=f"{request.label} of {request.prompt.name} now points at version "
                         f"{request.to_version.number} ({how}).", key="applied")


def promotion_rejected(request, *, user, comment: str) -> None:
    _tell_requester(request, actor=user, kind="prompt.promotion.rejected",
                    title=f"Rejected by {user.get_username()}: {_what(request)}", body=f"“{comment}”",
                    key="rejected")


def promotion_cancelled(request, *, actor, comment: str) -> None:
    who = getattr(actor, "get_username", lambda: str(actor))()
    _tell_requester(request, actor=actor, kind="prompt.promotion.cancelled",
                    title=f"Cancelled by {who}: {_what(request)}", body=f"“{comment}”" if comment else "",
                    key="cancelled")


def waiting(user) -> Waiting | None:
    count = promotion_requests_waiting_on(user=user).count()
    return Waiting("prompt.promotion", "Promotion requests to review", count,
                   reverse("prompts:requests") + "?waiting=me") if count else None
