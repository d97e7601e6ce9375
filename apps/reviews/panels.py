"""Boxes other apps put on the use-case page (the apps above reviews register from their hooks.py):

    register_use_case_panel(key, fn)   # fn(*, use_case, user) -> {"title", "html"} or None (nothing to show)

A panel that raises shows "This panel failed to load." instead of breaking the page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UseCasePanel:
    key: str
    fn: Callable[..., dict | None]


_panels: dict[str, UseCasePanel] = {}


def register_use_case_panel(key: str, fn: Callable[..., dict | None]) -> None:
    _panels[key] = UseCasePanel(key, fn)


def use_case_panels(*, use_case, user) -> list[dict]:
    """The registered panels' content for this page, in registration order."""
    out = []
    for panel in _panels.values():
        try:
            content = panel.fn(use_case=use_case, user=user)
        except Exception:  # noqa: BLE001 - another app's panel must not break this page
            log.exception("use-case panel %s failed", panel.key)
            content = {"title": panel.key, "html": "", "error": "This panel failed to load."}
        if content:
            out.append(content)
    return out
