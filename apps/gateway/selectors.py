"""Reads for the gateway's pages: keys restricted to the teams the actor may see; the request log."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.permissions import Action, get_object_for, restrict
from apps.gateway.models import GatewayKey


def keys_for(actor, *, team=None) -> QuerySet[GatewayKey]:
    qs = restrict(GatewayKey.objects.select_related("team", "created_by"), actor, Action.VIEW)
    if team is not None:
        qs = qs.filter(team=team)
    return qs


def key_get(actor, key_id: int, action: Action = Action.VIEW) -> GatewayKey:
    """One key the actor may see (404 otherwise), checked for `action` (403)."""
    return get_object_for(actor, GatewayKey.objects.select_related("team", "created_by"), action, pk=key_id)
