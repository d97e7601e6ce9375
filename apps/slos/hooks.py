"""What slos registers into lower apps at start-up, in one place (docs/architecture.md, "The registries"): audit
links to SLOs and their alerts (both open the use case's SLO page). Called once, from `SlosConfig.ready()`."""

from __future__ import annotations

from django.urls import reverse

from apps.audit.links import int_ids, register_object_link
from apps.slos.models import Slo, SloAlert


def _slo_urls(ids: list[str]) -> dict[str, str]:
    return {str(pk): reverse("slos:use_case", args=[use_case_id]) + f"#slo-{pk}"
            for pk, use_case_id in Slo.objects.filter(pk__in=int_ids(ids)).values_list("pk", "use_case_id")}


def _alert_urls(ids: list[str]) -> dict[str, str]:
    return {str(pk): reverse("slos:use_case", args=[use_case_id])
            for pk, use_case_id in SloAlert.objects.filter(pk__in=int_ids(ids)).values_list("pk", "slo__use_case_id")}


def register() -> None:
    register_object_link("slos.slo", _slo_urls)
    register_object_link("slos.sloalert", _alert_urls)
