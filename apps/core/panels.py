"""Boxes higher apps add to a lower app's page, without the lower app knowing them (a registry per page):

    key_panels = PanelRegistry("gateway key")         # in the lower app (apps/gateway/registry.py)
    key_panels.register("incidents", fn)              # from a higher app's hooks.py; fn(**page) -> {"title", "html"}
    "panels": key_panels.panels(key=key, user=user)   # in the page's view; the template includes
                                                      # components/registered_panels.html

A panel returning None shows nothing; one that raises shows "This panel failed to load." instead of breaking the page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class PanelRegistry:
    def __init__(self, page: str):
        self.page = page
        self._fns: dict[str, Callable[..., dict | None]] = {}

    def register(self, key: str, fn: Callable[..., dict | None]) -> None:
        self._fns[key] = fn

    def panels(self, **page) -> list[dict]:
        """The registered panels' content for this page, in registration order."""
        out = []
        for key, fn in self._fns.items():
            try:
                content = fn(**page)
            except Exception:  # noqa: BLE001 - another app's panel must not break this page
                log.exception("%s panel %s failed", self.page, key)
                content = {"title": key, "html": "", "error": "This panel failed to load."}
            if content:
                out.append({"key": key, **content})
        return out
