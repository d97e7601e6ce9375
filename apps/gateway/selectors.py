"""Reads for the gateway's pages: keys restricted to the teams the actor may see; the request log; stored
bodies, readable by whoever may read their key's traffic (apps/evals reads them through `body_get` too)."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.permissions import Action, get_object_for, restrict
from apps.gateway.models import GatewayBody, GatewayKey


def keys_for(actor, *, team=None) -> QuerySet[GatewayKey]:
    qs = restrict(GatewayKey.objects.select_related("team", "created_by"), actor, Action.VIEW)
    if team is not None:
        qs = qs.filter(team=team)
    return qs


def key_get(actor, key_id: int, action: Action = Action.VIEW) -> GatewayKey:
    """One key the actor may see (404 otherwise), checked for `action` (403)."""
    return get_object_for(actor, GatewayKey.objects.select_related("team", "created_by"), action, pk=key_id)


def body_get(actor, request_id: str) -> GatewayBody | None:
    """The stored (redacted) body of one request, if there is one and the actor may read its key's traffic."""
    return (GatewayBody.objects.select_related("key", "team")
            .filter(request_id=request_id, key__in=keys_for(actor).values("pk")).first())


def body_request_ids(actor, request_ids) -> set[str]:
    """Which of these requests have a stored body the actor may read (the request log marks them)."""
    return set(GatewayBody.objects.filter(request_id__in=list(request_ids), key__in=keys_for(actor).values("pk"))
               .values_list("request_id", flat=True))
