"""Where apps above prompts plug in, at start-up (their `apps/<app>/hooks.py`), without prompts importing them.

    from apps.prompts.registry import register_gate_check, register_resolve_guard, CheckOutcome

- **Gate checks** run on every promotion request (at open, on each approval, on re-check). Each returns a
  `CheckOutcome`; the result is stored with the time it was taken. Built in: `lint`, `approvals`
  (apps/prompts/hooks.py).
  `use_case` (reviews) and `eval_gate` (evals) are placeholders reporting "not configured" until their
  apps register a function under the same key. Whether a check blocks is the check's default, unless
  the team's `PromptPolicy.check_overrides` says otherwise; "not configured" blocks only when the team's
  policy says so; a check that raises blocks (fail closed) and its error is shown.
- **Resolve guards** run on every `GET /api/v1/prompts/{name}/resolve` (cached or not): return a reason
  to refuse (the kill switch: answered 423) or None. They run on the hot path: keep them cheap (cache).
- **Prompt panels** add a small box to the prompt page (reviews: "the use case this prompt serves").
- **Prompt filters** add a filter to the catalog page (reviews: "use case").
- **Playground actions** add a button to each playground run (evals: "save inputs as a dataset item").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apps.prompts.models import CheckStatus


@dataclass(frozen=True)
class CheckOutcome:
    status: str  # a CheckStatus value
    summary: str
    details: dict = field(default_factory=dict)

    @classmethod
    def passed(cls, summary: str, **details) -> CheckOutcome:
        return cls(CheckStatus.PASSED, summary, details)

    @classmethod
    def failed(cls, summary: str, **details) -> CheckOutcome:
        return cls(CheckStatus.FAILED, summary, details)

    @classmethod
    def not_configured(cls, summary: str = "Not configured", **details) -> CheckOutcome:
        return cls(CheckStatus.NOT_CONFIGURED, summary, details)


@dataclass(frozen=True)
class GateContext:
    """What a gate check sees. `request` is the PromotionRequest; the rest is there to save lookups."""

    request: Any
    prompt: Any
    to_version: Any
    from_version: Any
    label: str
    policy: Any  # PromptPolicy (possibly unsaved defaults)


@dataclass(frozen=True)
class GateCheck:
    key: str
    label: str
    fn: Callable[[GateContext], CheckOutcome]
    blocking_default: bool = True
    order: int = 100
    placeholder: bool = False


@dataclass(frozen=True)
class ResolveTarget:
    """What a resolve guard sees: ids and names only (the resolve path is served from cache)."""

    prompt_id: int
    prompt_name: str
    team_id: int
    version_number: int
    label: str | None


@dataclass(frozen=True)
class PromptPanel:
    key: str
    fn: Callable[..., dict | None]  # fn(prompt=..., user=...) -> {"title": str, "html": str} | None


@dataclass(frozen=True)
class PromptFilter:
    key: str
    label: str
    choices: Callable[..., list[tuple[str, str]]]  # choices(user=...) -> [(value, label)]
    apply: Callable[[Any, str], Any]  # apply(queryset of Prompt, value) -> queryset


@dataclass(frozen=True)
class PlaygroundAction:
    key: str
    label: str
    url: Callable[..., str | None]  # url(run=..., user=...) -> a URL to POST to, or None to hide


_checks: dict[str, GateCheck] = {}
_guards: dict[str, Callable[[ResolveTarget], str | None]] = {}
_panels: dict[str, PromptPanel] = {}
_filters: dict[str, PromptFilter] = {}
_playground_actions: dict[str, PlaygroundAction] = {}


def register_gate_check(key: str, label: str, fn: Callable[[GateContext], CheckOutcome], *,
                        blocking_default: bool = True, order: int = 100) -> None:
    """Add (or replace, by key) a promotion gate check."""
    _checks[key] = GateCheck(key, label, fn, blocking_default, order)


def register_resolve_guard(key: str, fn: Callable[[ResolveTarget], str | None]) -> None:
    """Add (or replace) a guard that may refuse to serve a prompt: return the reason, or None to allow."""
    _guards[key] = fn


def register_prompt_panel(key: str, fn: Callable[..., dict | None]) -> None:
    _panels[key] = PromptPanel(key, fn)


def register_prompt_filter(key: str, label: str, choices, apply) -> None:
    _filters[key] = PromptFilter(key, label, choices, apply)


def register_playground_action(key: str, label: str, url) -> None:
    _playground_actions[key] = PlaygroundAction(key, label, url)


def unregister(kind: str, key: str) -> None:
    """For tests: drop one registration (kind: check | guard | panel | filter | playground_action)."""
    registry = {"check": _checks, "guard": _guards, "panel": _panels, "filter": _filters,
                "playground_action": _playground_actions}[kind]
    registry.pop(key, None)


def gate_checks() -> list[GateCheck]:
    return sorted(_checks.values(), key=lambda c: (c.order, c.key))


def gate_check(key: str) -> GateCheck | None:
    return _checks.get(key)


def resolve_guards() -> list[tuple[str, Callable[[ResolveTarget], str | None]]]:
    return list(_guards.items())


def prompt_panels() -> list[PromptPanel]:
    return list(_panels.values())


def prompt_filters() -> list[PromptFilter]:
    return list(_filters.values())


def playground_actions() -> list[PlaygroundAction]:
    return list(_playground_actions.values())


def register_placeholder(key: str, label: str, owner: str, order: int) -> None:
    """A check an app above fills in: until it registers, it reports "not configured"."""
    def not_configured(context: GateContext) -> CheckOutcome:
        return CheckOutcome.not_configured(f"Not configured: the {owner} app has not registered this check yet.")

    _checks[key] = GateCheck(key, label, not_configured, True, order, placeholder=True)
