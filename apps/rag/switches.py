"""Where apps above rag switch retrieval off (incidents' "retrieval disabled"), without rag knowing them.

    register_retrieval_switch("incident", fn)   # fn(collection_id, team_id) -> RetrievalOff | None (sync; may query)
    collection_panels.register("incidents", fn)  # fn(*, collection, user) -> {"title", "html"} or None: a box on
                                                 # the collection's page (its switches, to apply and undo)

`retrieve()` asks every registered switch before it runs a query, each time (one small query: nothing to
cache, so a switch acts on the very next retrieval in every process). A collection switched off retrieves
nothing; `answer_question()` then either refuses with the switch's message or answers without passages,
with the message as a disclaimer at the top of the answer (`RetrievalOff.answer`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from apps.core.panels import PanelRegistry

REFUSE = "refuse"
WITHOUT = "without"  # answer without retrieval, with a disclaimer
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


def retrieval_off(collection) -> RetrievalOff | None:
    """The first registered switch that takes this collection offline now, or None."""
    for fn in _switches.values():
        off = fn(collection.pk, collection.team_id)
        if off is not None:
            return off
    return None
