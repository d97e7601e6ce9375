"""Whether a prompt may be served, as far as use cases go: the read behind the kill-switch resolve guard (423).

The resolve guard is on the hot path: it reads a per-prompt status from the Django cache, filled on a miss
and dropped (after commit) on every state change of a linked use case (`forget_prompt_status`).
"""

from __future__ import annotations

from django.core.cache import cache
from django.utils import timezone

from apps.reviews.models import State, UseCase, UseCasePrompt

CACHE_TTL = 300
_OK = "ok"


def _cache_key(prompt_id: int) -> str:
    return f"reviews:prompt-status:{prompt_id}"


def blocking_reason(use_case: UseCase) -> str | None:
    """Why this use case stops its prompts (suspended, or its approval expired), or None."""
    if use_case.state == State.SUSPENDED:
        return f"Use case “{use_case.title}” is suspended."
    if use_case.state == State.EXPIRED or (use_case.state in (State.ACTIVE, State.REVIEW_DUE)
                                           and use_case.expires_at and use_case.expires_at <= timezone.now()):
        return f"The approval of use case “{use_case.title}” has expired."
    return None


def prompt_status(prompt_id: int) -> str | None:
    """The reason this prompt must not be served (a linked use case suspended or expired), or None."""
    cached = cache.get(_cache_key(prompt_id))
    if cached is not None:
        return None if cached == _OK else cached
    reason = None
    for use_case in UseCase.objects.filter(prompt_links__prompt_id=prompt_id).only("title", "state", "expires_at"):
        reason = blocking_reason(use_case)
        if reason:
            break
    cache.set(_cache_key(prompt_id), reason or _OK, CACHE_TTL)
    return reason


def forget_prompt_status(use_case_id: int, prompt_ids=None) -> None:
    ids = list(prompt_ids or UseCasePrompt.objects.filter(use_case_id=use_case_id).values_list("prompt_id", flat=True))
    if ids:
        cache.delete_many([_cache_key(pk) for pk in ids])
