"""What incidents registers into lower apps at start-up, in one place (docs/architecture.md, "The registries"):
the gateway's `incident` admission guard (a "feature off" mitigation → 423 with its message) and `incident`
guardrail policy (stricter filters), llm's reroutes (model fallback), rag's retrieval switch (retrieval
disabled), the kinds of `switches.py` into `mitigations.py`, audit links to incidents, and the header's "waiting
on you" count of unacknowledged incidents. Called once, from `IncidentsConfig.ready()`.
"""

from __future__ import annotations

from django.urls import reverse

from apps.audit.links import int_ids, register_object_link
from apps.gateway.registry import register_admission_guard, register_guard_policy
from apps.incidents import mitigations, selectors, switches
from apps.incidents.models import Incident
from apps.llm.routing import register_reroutes
from apps.notifications.waiting import Waiting, register_waiting
from apps.rag.switches import register_retrieval_switch


def _incident_urls(ids: list[str]) -> dict[str, str]:
    return {str(pk): reverse("incidents:detail", args=[pk])
            for pk in Incident.objects.filter(pk__in=int_ids(ids)).values_list("pk", flat=True)}


def waiting_unacknowledged(user):
    """Open incidents nobody acknowledged that this person commands or whose owning team they are in."""
    count = selectors.unacknowledged_for(user).count()
    return Waiting("incidents.unacknowledged", "Unacknowledged incidents", count, reverse("incidents:list"))


def register() -> None:
    register_admission_guard(mitigations.GUARD_KEY, mitigations.incidents_guard)
    # The other four switches (ADR 0081): kinds of mitigations, and what the lower apps ask.
    switches.register()
    register_reroutes("incident", switches.reroutes_now)
    register_retrieval_switch("incident", switches.retrieval_switch)
    register_guard_policy("incident", switches.guard_policy)
    register_object_link("incidents.incident", _incident_urls)
    register_waiting("incidents.unacknowledged", waiting_unacknowledged)
