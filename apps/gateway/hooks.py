"""What the gateway registers into lower apps at start-up: audit links to its keys, its count on the team page,
its spend panel on the cost dashboard."""

from __future__ import annotations

from django.urls import reverse

from apps.accounts.ownership import register_owned_counter
from apps.audit.links import int_ids, register_object_link
from apps.costs.panels import register_dashboard_panel
from apps.gateway.dashboards import cost_panel
from apps.gateway.models import GatewayKey


def _key_urls(ids: list[str]) -> dict[str, str]:
    return {str(pk): reverse("gateway:key_detail", args=[pk])
            for pk in GatewayKey.objects.filter(pk__in=int_ids(ids)).values_list("pk", flat=True)}


def _active_keys(team) -> int:
    return team.gateway_keys.filter(revoked_at__isnull=True).count()


def register() -> None:
    register_object_link("gateway.gatewaykey", _key_urls)
    register_owned_counter("Gateway keys (not revoked)", _active_keys)
    register_dashboard_panel("gateway", cost_panel)  # gateway spend by key, alias or deployment
