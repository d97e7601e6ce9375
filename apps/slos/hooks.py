"""What slos registers into lower apps at start-up, in one place (docs/architecture.md, "The registries"): audit
links to SLOs and their alerts (both open the use case's SLO page) and the SLO panel on the use-case page
(reviews' `register_use_case_panel`). Called once, from `SlosConfig.ready()`."""

from __future__ import annotations

from django.template.loader import render_to_string
from django.urls import reverse

from apps.audit.links import int_ids, register_object_link
from apps.reviews.panels import register_use_case_panel
from apps.slos import selectors
from apps.slos.models import Slo, SloAlert


def _slo_urls(ids: list[str]) -> dict[str, str]:
    return {str(pk): reverse("slos:use_case", args=[use_case_id]) + f"#slo-{pk}"
            for pk, use_case_id in Slo.objects.filter(pk__in=int_ids(ids)).values_list("pk", "use_case_id")}


def _alert_urls(ids: list[str]) -> dict[str, str]:
    return {str(pk): reverse("slos:use_case", args=[use_case_id])
            for pk, use_case_id in SloAlert.objects.filter(pk__in=int_ids(ids)).values_list("pk", "slo__use_case_id")}


def use_case_panel(*, use_case, user, **_):
    """The use case's SLOs (status, budget left) and the link to their page."""
    slos = [(slo, None if slo.budget_remaining is None else slo.budget_remaining * 100)
            for slo in selectors.slo_list(actor=user, use_case_id=use_case.pk, active_only=True)]
    html = render_to_string("slos/partials/_use_case_panel.html", {"slos": slos, "use_case": use_case})
    return {"title": "SLOs", "html": html}


def register() -> None:
    register_object_link("slos.slo", _slo_urls)
    register_object_link("slos.sloalert", _alert_urls)
    register_use_case_panel("slos", use_case_panel)
