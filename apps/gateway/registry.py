"""Where apps above the gateway plug in: admission guards (a reason → 423) and actions on a stored body.

    register_admission_guard("use_case", fn)      # fn(AdmissionTarget) -> reason or None (sync; may query)
    register_body_action("evals_add_item", "Add to eval dataset", url)   # url(body=..., user=...) -> URL | None

Reviews registers the `use_case` guard (apps/reviews/hooks.py `use_case_guard`). The front door asks each guard at most
once per ADMISSION_TTL_SECONDS per key and process (and again at once when the gateway stamp moves: call
`admission_changed()` after a commit that changes an answer). A guard that raises refuses (fail closed, 503).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

from apps.gateway import keys


@dataclass(frozen=True)
class AdmissionTarget:
    key_id: int
    team_id: int
    feature: str
    use_case_id: int | None


Guard = Callable[[AdmissionTarget], "str | None"]
_guards: dict[str, Guard] = {}


@dataclass(frozen=True)
class BodyAction:
    """A button on the request log's detail page of a stored body (evals: "Add to eval dataset")."""

    key: str
    label: str
    url: Callable[..., str | None]  # url(body=GatewayBody, user=...) -> a URL to open, or None to hide


_body_actions: dict[str, BodyAction] = {}


def register_body_action(key: str, label: str, url) -> None:
    _body_actions[key] = BodyAction(key, label, url)


def body_actions() -> list[BodyAction]:
    return list(_body_actions.values())


def register_admission_guard(key: str, fn: Guard) -> None:
    _guards[key] = fn


def admission_guards() -> dict[str, Guard]:
    return dict(_guards)


def admission_check(target: AdmissionTarget) -> tuple[str, str] | None:
    """(guard key, reason) of the first guard that refuses, or None. Sync: the front door runs it in a thread."""
    for key, fn in _guards.items():
        reason = fn(target)
        if reason:
            return key, reason
    return None


def admission_changed() -> None:
    """An answer of a guard may have changed: every gateway process asks again on its next request."""
    transaction.on_commit(keys.stamp_bump)
