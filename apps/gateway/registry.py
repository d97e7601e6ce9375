"""Where apps above the gateway plug in: admission guards (a reason → 423), guardrail policies stricter than a
key's own, and actions on a stored body.

    register_admission_guard("use_case", fn)      # fn(AdmissionTarget) -> reason, Refusal or None (sync; may query)
    register_guard_policy("use_case", fn)         # fn(AdmissionTarget) -> dict of policy fields or None (sync)
    register_limit_switch("incident", fn)         # fn(AdmissionTarget) -> LimitSwitch or None (sync): who lowered
                                                  # the key's limits (asked only when a limit refuses)
    register_body_action("evals_add_item", "Add to eval dataset", url)   # url(body=..., user=...) -> URL | None
    key_panels.register("incidents", fn)          # fn(*, key, user) -> {"title", "html"} or None: a box on the key page

Reviews registers the `use_case` guard (apps/reviews/hooks.py `use_case_guard`). The front door asks each guard at most
once per ADMISSION_TTL_SECONDS per key and process (and again at once when the gateway stamp moves: call
`admission_changed()` after a commit that changes an answer). A guard that raises refuses (fail closed, 503).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction

from apps.core import single_flight
from apps.core.panels import PanelRegistry
from apps.gateway import keys
from apps.gateway.keys import KeyInfo
from apps.gateway.wire import GatewayError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class AdmissionTarget:
    key_id: int
    team_id: int
    feature: str
    use_case_id: int | None


@dataclass(frozen=True)
class Refusal:
    """A guard's refusal that names the switch refusing (an incident mitigation's id): the refused request's usage
    event carries it (`switch_id`, ADR 0122). A plain reason (str) refuses too."""

    reason: str
    switch_id: int | None = None


Guard = Callable[[AdmissionTarget], "str | Refusal | None"]
_guards: dict[str, Guard] = {}


@dataclass(frozen=True)
class BodyAction:
    """A button on the request log's detail page of a stored body (evals: "Add to eval dataset")."""

    key: str
    label: str
    url: Callable[..., str | None]  # url(body=GatewayBody, user=...) -> a URL to open, or None to hide


_body_actions: dict[str, BodyAction] = {}
key_panels = PanelRegistry("gateway key")  # boxes on a key's page (incidents: its switches)


def register_body_action(key: str, label: str, url) -> None:
    _body_actions[key] = BodyAction(key, label, url)


def body_actions() -> list[BodyAction]:
    return list(_body_actions.values())


def register_admission_guard(key: str, fn: Guard) -> None:
    _guards[key] = fn


def admission_guards() -> dict[str, Guard]:
    return dict(_guards)


def admission_check(target: AdmissionTarget) -> tuple[str, str, int | None] | None:
    """(guard key, reason, the switch refusing or None) of the first guard that refuses, or None. Sync: the front
    door runs it in a thread."""
    for key, fn in _guards.items():
        reason = fn(target)
        if isinstance(reason, Refusal):
            return key, reason.reason, reason.switch_id
        if reason:
            return key, reason, None
    return None


# A policy provider answers with the guardrail fields it requires, e.g. {"guard_input_pii": "redact"}
# (the GatewayKey field names and values); the gateway takes, field by field, the stricter of it and the key's.
# It may name the switch behind each field, {"switch_ids": {"guard_input_pii": 12}}: a call that field acts on
# is marked with it (guard.Policy.switch_ids, ADR 0122).
PolicyProvider = Callable[[AdmissionTarget], "dict[str, str] | None"]
_policies: dict[str, PolicyProvider] = {}


def register_guard_policy(key: str, fn: PolicyProvider) -> None:
    _policies[key] = fn


def guard_policies(target: AdmissionTarget) -> list[dict[str, str]]:
    """What each registered provider requires of this key's traffic (sync: the front door runs it in a thread,
    at most once per GATEWAY_ADMISSION_TTL_SECONDS per key and process, like the admission guards)."""
    return [policy for fn in _policies.values() if (policy := fn(target))]


@dataclass(frozen=True)
class LimitSwitch:
    """A switch that lowered this key's limits (an incident's rate limit): its id and the limits before it
    ({"requests_per_minute": 100, …}). A refusal the limits before would not have made is marked with it."""

    switch_id: int
    before: dict


_limit_switches: dict[str, Callable[[AdmissionTarget], LimitSwitch | None]] = {}


def register_limit_switch(key: str, fn: Callable[[AdmissionTarget], LimitSwitch | None]) -> None:
    _limit_switches[key] = fn


def limit_switch(target: AdmissionTarget) -> LimitSwitch | None:
    """The first registered answer for this key (sync: the front door asks it in a thread, only for a refusal,
    cached per key like the admission answer)."""
    for fn in _limit_switches.values():
        if (answer := fn(target)) is not None:
            return answer
    return None


def limited_by(switch: LimitSwitch | None, field: str, used) -> int | None:
    """The switch that made a `field` refusal at `used`, or None when the limit before it refuses too."""
    if switch is None or field not in switch.before:
        return None
    before = switch.before[field]
    return switch.switch_id if before is None or used <= before else None


def target_of(info: KeyInfo) -> AdmissionTarget:
    return AdmissionTarget(key_id=info.id, team_id=info.team_id, feature=info.feature, use_case_id=info.use_case_id)


async def cached_answer(answers: dict, info: KeyInfo, stamp: bytes, ask: Callable[[AdmissionTarget], T], *,
                        failure: str) -> T:
    """`ask(target)` for this key (sync, in a thread), reused from `answers` (a per-process dict) while the gateway
    stamp is the one it was asked under and for GATEWAY_ADMISSION_TTL_SECONDS. If `ask` raises, the request is
    refused (503 `guard_failed` with `failure`): fail closed.

    One question at a time per key and stamp: the requests that find the answer stale while it is being asked
    again wait for that one answer instead of each asking (apps/core/single_flight.py, ADR 0099)."""
    cached = answers.get(info.id)
    now = time.monotonic()
    if cached is not None and cached[0] == stamp and now - cached[1] < settings.GATEWAY_ADMISSION_TTL_SECONDS:
        return cached[2]
    return await single_flight.shared(_asking, (id(answers), info.id, stamp),
                                      lambda: _ask(answers, info, stamp, ask, failure, now))


_asking: dict = {}  # the questions in flight (cached_answer)


async def _ask(answers: dict, info: KeyInfo, stamp: bytes, ask: Callable[[AdmissionTarget], T], failure: str,
               now: float) -> T:
    try:
        answer = await sync_to_async(ask)(target_of(info))
    except Exception:
        log.exception("%s failed for key %s", getattr(ask, "__name__", "a gateway registry"), info.prefix)
        raise GatewayError(503, failure, code="guard_failed")
    if len(answers) >= 10_000:
        answers.clear()  # bounded: a real key is asked again on its next request
    answers[info.id] = (stamp, now, answer)
    return answer


def admission_changed() -> None:
    """An answer of a guard may have changed: every gateway process asks again on its next request."""
    transaction.on_commit(keys.stamp_bump)
