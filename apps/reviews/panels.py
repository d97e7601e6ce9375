"""Boxes higher apps add to the use-case pages: a panel on the use case's page and a column in the council's
register (the use-case list). Reviews sits below them, so they register from their hooks.py:

    register_use_case_panel(key, fn)           # fn(*, use_case, user) -> {"title", "html"} or None (nothing to show)
    register_register_column(key, label, fn)   # fn(*, use_case_ids, user) -> {use case id: html}

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
_columns: dict[str, tuple[str, Callable]] = {}


def register_use_case_panel(key: str, fn: Callable[..., dict | None]) -> None:
    _panels[key] = UseCasePanel(key, fn)


def register_register_column(key: str, label: str, fn: Callable) -> None:
    _columns[key] = (label, fn)


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
            out.append({"key": panel.key, **content})
    return out


def register_columns(*, use_case_ids, user) -> list[dict]:
    """[{"key", "label", "cells": {use case id: html}}], one query per column for the whole page."""
    return [{"key": key, "label": label, "cells": fn(use_case_ids=list(use_case_ids), user=user)}
            for key, (label, fn) in _columns.items()]
