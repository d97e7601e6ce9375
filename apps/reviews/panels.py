"""Use-case panels: a small box on the use case page that a higher app adds (incidents: the use case's
runbooks and recent incidents). Registered from the higher app's hooks.register():

    register_use_case_panel(key, fn)    # fn(use_case=..., user=...) -> {"title": str, "html": str} | None

`html` is trusted markup the registering app escaped itself. A failing panel shows an error in its box and
never breaks the page.
"""

from __future__ import annotations

from collections.abc import Callable

_panels: dict[str, Callable[..., dict | None]] = {}


def register_use_case_panel(key: str, fn: Callable[..., dict | None]) -> None:
    """Add (or replace, by key) a panel."""
    _panels[key] = fn


def unregister_use_case_panel(key: str) -> None:
    """For tests."""
    _panels.pop(key, None)


def use_case_panels(*, use_case, user) -> list[dict]:
    out = []
    for key, fn in _panels.items():
        try:
            content = fn(use_case=use_case, user=user)
        except Exception:  # noqa: BLE001 - another app's panel must not break this page
            content = {"title": key, "html": "", "error": "This panel failed to load."}
        if content:
            out.append(content)
    return out
