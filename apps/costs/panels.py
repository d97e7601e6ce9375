"""Panels higher apps add to the cost dashboard (costs sits below them, so they register; it never imports them).

The gateway registers its traffic panel (spend by key, alias or deployment) from `apps/gateway/hooks.py`:

    register_dashboard_panel("gateway", fn)   # fn(*, actor, filters: UsageFilters, params: QueryDict) -> html | ""

Reviews (where use cases live) registers how the dashboard names them, from `apps/reviews/hooks.py`:

    register_use_case_names(fn)   # fn(ids: list[int]) -> {id: (title, team id)}: one query for a chart's ids

A panel renders with the dashboard's filters (its range and team; the other filters are the panel's to honour or
say it ignores) and its own GET parameters; an empty string shows nothing. A panel that fails is logged and
shown as a one-line notice, never a 500 of the whole dashboard.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DashboardPanel:
    key: str
    fn: Callable[..., str]


_panels: dict[str, DashboardPanel] = {}
_use_case_names: list[Callable[[list[int]], dict[int, tuple[str, int | None]]]] = []


def register_dashboard_panel(key: str, fn: Callable[..., str]) -> None:
    _panels[key] = DashboardPanel(key, fn)


def dashboard_panels(*, actor, filters, params) -> list[dict]:
    """[{"key", "html"} or {"key", "error"}] of the registered panels that have something to show."""
    out = []
    for panel in _panels.values():
        try:
            html = panel.fn(actor=actor, filters=filters, params=params)
        except Exception:
            log.exception("cost dashboard panel %s failed", panel.key)
            out.append({"key": panel.key, "error": "This panel could not be drawn; the error is logged."})
            continue
        if html:
            out.append({"key": panel.key, "html": html})
    return out


def register_use_case_names(fn: Callable[[list[int]], dict[int, tuple[str, int | None]]]) -> None:
    _use_case_names[:] = [fn]


def use_case_names(ids) -> dict[int, tuple[str, int | None]]:
    """{use case id: (title, team id)} of the ids that name a use case; {} when nothing is registered."""
    ids = sorted({i for i in ids if i is not None})
    return _use_case_names[0](ids) if ids and _use_case_names else {}
