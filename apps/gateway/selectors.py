"""Reads for the gateway's pages: keys restricted to the teams the actor may see; the request log; stored
bodies, readable by whoever may read their key's traffic (apps/evals reads them through `body_get` too); its
traffic (spend and latency from the daily rollups) for the cost and quality dashboards."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import QuerySet, Sum

from apps.accounts.permissions import Action, get_object_for, restrict
from apps.costs.rollups import percentile_from_bins
from apps.costs.selectors import visible_team_ids
from apps.gateway.models import GatewayBody, GatewayKey, LatencyDaily, TrafficDaily


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


# --- traffic (the daily rollups): spend by key, alias or deployment; latency percentiles --------------------
TRAFFIC_GROUPS = {"key": "gateway_key_id", "alias": "alias", "deployment": "deployment"}
LATENCY_MEASURES = ("total", "upstream", "overhead", "ttft")


@dataclass(frozen=True)
class TrafficRow:
    label: str
    requests: int
    errors: int
    refused: int
    input_tokens: int
    output_tokens: int
    cost: Decimal
    unpriced: int
    fallbacks: int


@dataclass(frozen=True)
class LatencyRow:
    label: str
    requests: int
    percentiles: dict  # measure -> (p50, p95) in ms, None where no call had that measure


def _in_range(qs, *, actor, start: date, end: date, team_ids=()):
    """Rows of [start, end) days the actor may see, optionally of some teams."""
    qs = qs.filter(day__gte=start, day__lt=end)
    visible = visible_team_ids(actor)
    if visible is not None:
        qs = qs.filter(team_id__in=visible)
    if team_ids:
        qs = qs.filter(team_id__in=team_ids)
    return qs


def _key_labels(ids) -> dict[int, str]:
    return {pk: f"{name} ({GatewayKey.PREFIX}{key_id})"
            for pk, name, key_id in GatewayKey.objects.filter(pk__in=ids).values_list("pk", "name", "key_id")}


def _labels(group_by: str, values) -> dict:
    if group_by == "key":
        return _key_labels([v for v in values if v is not None])
    return {v: v or "(a catalog model, no alias)" for v in values}


def traffic_spend(*, actor, start: date, end: date, team_ids=(), group_by: str = "key",
                  limit: int = 15) -> list[TrafficRow]:
    """Gateway calls and spend in [start, end) grouped by key, alias or deployment, most spent first."""
    column = TRAFFIC_GROUPS[group_by]
    rows = list(_in_range(TrafficDaily.objects, actor=actor, start=start, end=end, team_ids=team_ids)
                .values(column).annotate(requests=Sum("requests"), errors=Sum("errors"), refused=Sum("refused"),
                                         input_tokens=Sum("input_tokens"), output_tokens=Sum("output_tokens"),
                                         cost=Sum("cost"), unpriced=Sum("unpriced"), fallbacks=Sum("fallbacks"))
                .order_by("-cost", "-requests")[:limit])
    labels = _labels(group_by, [r[column] for r in rows])
    return [TrafficRow(label=labels.get(r.pop(column), "—"), **r) for r in rows]


def traffic_latency(*, actor, start: date, end: date, team_ids=(), group_by: str = "alias",
                    limit: int = 15) -> list[LatencyRow]:
    """p50/p95 of total, upstream, overhead and time-to-first-token latency in [start, end), by key, alias or
    deployment (busiest first), from the summed daily bins."""
    column = TRAFFIC_GROUPS[group_by]
    cells = (_in_range(LatencyDaily.objects, actor=actor, start=start, end=end, team_ids=team_ids)
             .values_list(column, "measure", "bin").annotate(n=Sum("requests")))
    bins: dict = defaultdict(lambda: defaultdict(dict))
    for value, measure, b, n in cells:
        bins[value][measure][b] = n
    busiest = sorted(bins, key=lambda v: -sum(bins[v]["total"].values()))[:limit]
    labels = _labels(group_by, busiest)
    return [LatencyRow(label=labels.get(value, "—"), requests=sum(bins[value]["total"].values()),
                       percentiles={m: (percentile_from_bins(bins[value][m], 0.5),
                                        percentile_from_bins(bins[value][m], 0.95)) for m in LATENCY_MEASURES})
            for value in busiest]
