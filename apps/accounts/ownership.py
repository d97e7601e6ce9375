"""What a team owns, for its team page: a registry of counters that each app fills at start-up
(its `apps/<app>/hooks.py`), so accounts (a base app) never imports the apps above it.

    from apps.accounts.ownership import register_owned_counter
    register_owned_counter("Budgets", lambda team: team.budgets.count())

Counters show in the order they were registered (INSTALLED_APPS order); registering a label again
replaces its counter (a reloaded app does not show it twice).
"""

from __future__ import annotations

from collections.abc import Callable

_COUNTERS: dict[str, Callable] = {}


def register_owned_counter(label: str, fn: Callable) -> None:
    """`fn(team) -> int`: how many of something the team owns."""
    _COUNTERS[label] = fn


def owned_by_team(team) -> list[dict]:
    return [{"label": label, "count": fn(team)} for label, fn in _COUNTERS.items()]
