"""What incidents registers into lower apps at start-up, in one place (docs/architecture.md, "The registries"):
the gateway's `incident` admission guard (a "feature off" mitigation → 423 with its message), prompts'
`incident` resolve guard (feature off on a prompt, for the catalog's resolve API) and `incident`
guardrail policy (stricter filters), llm's reroutes (model fallback), rag's retrieval switch (retrieval
disabled), the kinds of `switches.py` into `mitigations.py`, audit links to incidents and runbooks, the header's
"waiting on you" counts (unacknowledged incidents, action items due), the use case page's "Incidents and
runbooks" panel (reviews' use-case panel registry), the "Incident switches" box on the use case, prompt, key and
collection pages, llm's call switches (feature off and stricter filters on the portal's own calls) and the
paging-webhook task the services queue. Called once,
from `IncidentsConfig.ready()`.
"""

from __future__ import annotations

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from apps.audit.links import int_ids, register_object_link
from apps.core.tasks import tasks_register
from apps.gateway.registry import (
    key_panels,
    register_admission_guard,
    register_guard_policy,
    register_limit_switch,
)
from apps.incidents import mitigations, objects, runbooks, selectors, switches, tasks
from apps.incidents.models import ACTION_OPEN_STATUSES, ActionItem, Incident, IncidentType, Runbook
from apps.llm.routing import register_reroutes
from apps.llm.switches import register_call_switch
from apps.notifications.waiting import Waiting, register_waiting
from apps.prompts.registry import register_prompt_panel, register_resolve_guard
from apps.rag.switches import collection_panels, register_retrieval_switch
from apps.reviews.panels import register_use_case_panel


def _incident_urls(ids: list[str]) -> dict[str, str]:
    return {str(pk): reverse("incidents:detail", args=[pk])
            for pk in Incident.objects.filter(pk__in=int_ids(ids)).values_list("pk", flat=True)}


def waiting_unacknowledged(user):
    """Open incidents nobody acknowledged that this person commands or whose owning team they are in."""
    count = selectors.unacknowledged_for(user).count()
    return Waiting("incidents.unacknowledged", "Unacknowledged incidents", count, reverse("incidents:list"))


def _runbook_urls(ids: list[str]) -> dict[str, str]:
    return {str(pk): reverse("incidents:runbook", args=[pk])
            for pk in Runbook.objects.filter(pk__in=int_ids(ids)).values_list("pk", flat=True)}


def waiting_action_items(user):
    """Open action items of incident reviews that this person owns and that are due (today or earlier)."""
    count = ActionItem.objects.filter(owner=user, status__in=ACTION_OPEN_STATUSES,
                                      due_date__lte=timezone.localdate()).count()
    return Waiting("incidents.action_items", "Incident action items due", count, reverse("incidents:list"))


def use_case_panel(*, use_case, user):
    """The use case page: its recent incidents (those the reader may see) and its runbooks."""
    incidents = list(selectors.incident_list(actor=user).filter(use_cases=use_case)[:5])
    html = render_to_string("incidents/partials/_use_case_panel.html", {
        "use_case": use_case, "incidents": incidents, "runbooks": runbooks.runbooks_for_use_case(use_case),
        "may_write": runbooks.may_write(user, use_case), "kinds": IncidentType.choices})
    return {"title": "Incidents and runbooks", "html": html}


def switches_panel(scope: str):
    """The box of switches on an object's page (use case, prompt, key, collection): it loads its content from
    apps/incidents/object_views.py (what acts on the object now, apply, undo), a plain link without JavaScript."""

    def panel(*, user, **page):
        (obj,) = page.values()
        url = reverse("incidents:object_switches", args=[scope, obj.pk])
        return {"title": "Incident switches",
                "html": render_to_string("incidents/partials/_object_switches_panel.html",
                                         {"obj": objects.of(scope, obj), "url": url})}

    return panel


def register() -> None:
    register_admission_guard(mitigations.GUARD_KEY, mitigations.incidents_guard)
    register_limit_switch(mitigations.GUARD_KEY, mitigations.limit_switch)  # marks a rate limit's refusals
    register_resolve_guard(mitigations.GUARD_KEY, mitigations.prompt_guard)  # feature off on the resolve API
    # The other four switches (ADR 0081): kinds of mitigations, and what the lower apps ask.
    switches.register()
    register_reroutes("incident", switches.reroutes_now)
    register_retrieval_switch("incident", switches.retrieval_switch)
    register_guard_policy("incident", switches.guard_policy)
    # Feature off and stricter filters on the portal's own calls (apps/llm/calls.py, acalls.py), by use case, prompt,
    # feature; the gateway asks them for its prompt references (apps/gateway/prompt_ref.py, ADR 0122).
    register_call_switch(mitigations.GUARD_KEY, mitigations.call_switch)
    register_call_switch("incident_filters", switches.call_filters)
    register_call_switch("incident_rollback", switches.call_rollbacks)  # marks what a rollback serves (ADR 0122)
    register_object_link("incidents.incident", _incident_urls)
    register_waiting("incidents.unacknowledged", waiting_unacknowledged)
    register_object_link("incidents.runbook", _runbook_urls)
    register_waiting("incidents.action_items", waiting_action_items)
    register_use_case_panel("incidents", use_case_panel)
    register_use_case_panel("switches", switches_panel("use_case"))
    register_prompt_panel("switches", switches_panel("prompt"))
    key_panels.register("switches", switches_panel("key"))
    collection_panels.register("switches", switches_panel("collection"))
    tasks_register(tasks.paging_deliver_task)
