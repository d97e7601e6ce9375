"""Boxes higher apps add to the use-case pages: a panel on the use case's page and a column in the council's
register (the use-case list). Reviews sits below them, so they register from their hooks.py.

    register_use_case_panel(key, fn)       fn(use_case=, user=) -> {"title", "html"} or None
    register_register_column(key, label, fn)   fn(use_case_ids=, user=) -> {use case id: html}
"""

from __future__ import annotations

from collections.abc import Callable

_panels: dict[str, Callable] = {}
_columns: dict[str, tuple[str, Callable]] = {}


def register_use_case_panel(key: str, fn: Callable) -> None:
    _panels[key] = fn


def register_register_column(key: str, label: str, fn: Callable) -> None:
    _columns[key] = (label, fn)


def use_case_panels(*, use_case, user) -> list[dict]:
    out = []
    for key, fn in _panels.items():
        panel = fn(use_case=use_case, user=user)
        if panel:
            out.append({"key": key, **panel})
    return out


def register_columns(*, use_case_ids, user) -> list[dict]:
    """[{"key", "label", "cells": {use case id: html}}], one query per column for the whole page."""
    return [{"key": key, "label": label, "cells": fn(use_case_ids=list(use_case_ids), user=user)}
            for key, (label, fn) in _columns.items()]
