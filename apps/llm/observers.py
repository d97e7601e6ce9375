"""A per-request observer of the async call path (the gateway's tracing), through a context variable.

The call path reports each attempt on a deployment and the call's one record to whatever observer the caller
set for its task; it never knows who listens (the gateway's OpenTelemetry spans, apps/gateway/tracing.py).
With none set — tracing off — each report point costs one ContextVar lookup.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Protocol

from apps.llm.results import CallRecord


class CallObserver(Protocol):
    def attempt_begin(self, target) -> object:
        """An attempt on `target` (routing.Target) starts; returns a handle for attempt_end."""

    def attempt_end(self, handle: object, error: BaseException | None) -> None:
        """A failed attempt ended (the answering attempt ends with `recorded`)."""

    def recorded(self, record: CallRecord, answer) -> None:
        """The call's one record (and the provider's answer when there is one: ProviderChat/ProviderEmbedding)."""


current: ContextVar[CallObserver | None] = ContextVar("llm_call_observer", default=None)
