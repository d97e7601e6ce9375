"""Where apps above rag switch retrieval off (incidents' "retrieval disabled"), without rag knowing them.

    register_retrieval_switch("incident", fn)   # fn(collection_id, team_id) -> RetrievalOff | None (sync; may query)
    collection_panels.register("incidents", fn)  # fn(*, collection, user) -> {"title", "html"} or None: a box on
                                                 # the collection's page (its switches, to apply and undo)

`retrieve()` asks the registered switches before it runs a query. Their answer per collection is kept in the
shared cache under one stamp (apps/core/stamped_cache.py: one MGET per retrieval, where asking them was a
database query on every search); `retrieval_switches_changed()` replaces the stamp after the commit, so a switch
acts on the next retrieval in every process. A collection switched off retrieves nothing; `answer_question()`
then either refuses with the switch's message or answers without passages, with the message as a disclaimer at
the top of the answer (`RetrievalOff.answer`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

from apps.core.panels import PanelRegistry
from apps.core.stamped_cache import stamp_replace, stamped_get

REFUSE = "refuse"
WITHOUT = "without"  # answer without retrieval, with a disclaimer
STAMP_KEY = "rag:retrieval-switches:stamp"
ENTRY_TIMEOUT = 300
ANSWER_MODES = {REFUSE: "Refuse with the message", WITHOUT: "Answer without retrieval, with the message as a disclaimer"}


@dataclass(frozen=True)
class RetrievalOff:
    message: str
    answer: str = REFUSE  # REFUSE or WITHOUT
    switch_id: int | None = None  # the switch (an incident mitigation's id): marks the answers made without retrieval


Switch = Callable[[int, int], "RetrievalOff | None"]
_switches: dict[str, Switch] = {}
collection_panels = PanelRegistry("collection")


def register_retrieval_switch(key: str, fn: Switch) -> None:
    _switches[key] = fn


def _ask(collection_id: int, team_id: int) -> RetrievalOff | None:
    for fn in _switches.values():
        off = fn(collection_id, team_id)
        if off is not None:
            return off
    return None


def retrieval_off(collection) -> RetrievalOff | None:
    """The first registered switch that takes this collection offline now, or None (nothing registered: no
    round trip)."""
    if not _switches:
        return None
    return stamped_get(STAMP_KEY, f"rag:retrieval-switch:{collection.pk}",
                       lambda: _ask(collection.pk, collection.team_id), timeout=ENTRY_TIMEOUT)


def retrieval_switches_reset() -> None:
    """A new stamp now: every cached answer is asked again (on commit after a change; tests: rows rolled back)."""
    stamp_replace(STAMP_KEY)


def retrieval_switches_changed() -> None:
    """A switch's answer may have changed (applied, undone, a collection linked to a switched use case): every
    process asks again on its next retrieval (after the commit)."""
    transaction.on_commit(retrieval_switches_reset)
