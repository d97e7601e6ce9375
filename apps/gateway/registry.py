"""Admission guards: apps above the gateway decide whether a key's traffic may pass (a reason → 423); and
guardrail policies: apps above it may ask for a stricter guardrail policy than the key's own.

    register_admission_guard("use_case", fn)      # fn(AdmissionTarget) -> reason or None (sync; may query)
    register_guard_policy("use_case", fn)         # fn(AdmissionTarget) -> dict of policy fields or None (sync)

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


# A policy provider answers with the guardrail fields it requires, e.g. {"guard_input_pii": "redact"}
# (the GatewayKey field names and values); the gateway takes, field by field, the stricter of it and the key's.
PolicyProvider = Callable[[AdmissionTarget], "dict[str, str] | None"]
_policies: dict[str, PolicyProvider] = {}


def register_guard_policy(key: str, fn: PolicyProvider) -> None:
    _policies[key] = fn


def guard_policies(target: AdmissionTarget) -> list[dict[str, str]]:
    """What each registered provider requires of this key's traffic (sync: the front door runs it in a thread,
    at most once per GATEWAY_ADMISSION_TTL_SECONDS per key and process, like the admission guards)."""
    return [policy for fn in _policies.values() if (policy := fn(target))]


def admission_changed() -> None:
    """An answer of a guard may have changed: every gateway process asks again on its next request."""
    transaction.on_commit(keys.stamp_bump)
