"""What reviews plugs into the gateway: the `use_case` admission guard (a key bound to a use case that is not
active is refused with 423 and the reason).

To be called from apps/reviews/hooks.py `register()` (`gateway_hooks.register_gateway()`). The gateway asks the
guard at most once per GATEWAY_ADMISSION_TTL_SECONDS per key and process, so a suspension is seen within a
second in every gateway process; one indexed query per ask.
"""

from __future__ import annotations

from apps.gateway.registry import AdmissionTarget, register_admission_guard
from apps.reviews.integration import _blocking_reason
from apps.reviews.models import State, UseCase

LIVE = (State.ACTIVE, State.REVIEW_DUE)


def use_case_guard(target: AdmissionTarget) -> str | None:
    """Why a key's traffic may not pass now (its use case missing, not approved, suspended, expired), or None."""
    if target.use_case_id is None:
        return None
    use_case = UseCase.objects.filter(pk=target.use_case_id).only("title", "state", "expires_at").first()
    if use_case is None:
        return f"This key is bound to use case #{target.use_case_id}, which does not exist."
    reason = _blocking_reason(use_case)
    if reason:
        return reason
    if use_case.state not in LIVE:
        return f"Use case “{use_case.title}” is {use_case.state_label.lower()}, not active."
    return None


def register_gateway() -> None:
    register_admission_guard("use_case", use_case_guard)
