"""Reads of the costs app, already restricted to what the actor may see (team filter in SQL).

Dashboards and the summary API read rollups only — never raw events.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from apps.accounts.models import ApiToken, Team
from apps.accounts.permissions import Action, sees_everything, team_actions, teams_for
from apps.core import redis as portal_redis
from apps.core.demo_status import demo_loading
from apps.costs.budgets import PeriodBounds, active_budgets, period_bounds, scope_spend
from apps.costs.models import (
    Budget,
    BudgetPeriod,
    BudgetPeriodKind,
    CallStatus,
    CostAnomaly,
    Granularity,
    RepricingJob,
    UsageEvent,
    UsageRollup,
    UsageTokenHistogram,
)
from apps.costs.rollups import day_start, hourly_horizon  # noqa: F401  (used by the API)

GROUPS = {  # group_by name -> rollup column
    "team": "team_id", "feature": "feature", "tenant": "tenant", "model": "model", "source": "source",
    "prompt": "prompt_name", "use_case": "use_case_id",
}


@dataclass(frozen=True)
class UsageFilters:
    start: datetime
    end: datetime  # exclusive
    team_ids: tuple[int, ...] = ()
    feature: str = ""
    tenant: str = ""
    model: str = ""
    source: str = ""
    prompt: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def days(self) -> int:
        return max(1, round((self.end - self.start).total_seconds() / 86400))

    def previous(self) -> UsageFilters:
        span = self.end - self.start
        return replace(self, start=self.start - span, end=self.start)

    @property
    def granularity(self) -> str:
        """Hourly buckets for short recent ranges on hour boundaries; daily otherwise."""
        aligned = self.start == day_start(self.start) and self.end == day_start(self.end)
        if not aligned and self.start >= hourly_horizon():
            return Granularity.HOUR
        return Granularity.DAY


def default_filters(now: datetime | None = None, days: int = 30) -> UsageFilters:
    today = day_start(now or timezone.now())
    return UsageFilters(start=today - timedelta(days=days - 1), end=today + timedelta(days=1))


def visible_team_ids(actor) -> list[int] | None:
    """None: every team (and unattributed usage). Else the ids of the teams whose usage the actor may see.

    Read once per actor object (i.e. once per request), like the permission helpers' own caches.
    """
    cached = getattr(actor, "_costs_visible_teams", False)
    if cached is not False:
        return cached
    found = None if sees_everything(actor) else list(teams_for(actor, Action.VIEW).values_list("pk", flat=True))
    with contextlib.suppress(AttributeError):  # an actor that takes no attributes: asked every time
        actor._costs_visible_teams = found
    return found


def may_read_usage(actor) -> bool:
    if isinstance(actor, ApiToken):
        return Action.VIEW in team_actions(actor, actor.team_id)
    return True


DAILY = (Granularity.DAY, Granularity.DAY_ALL_TENANTS, Granularity.DAY_TENANTS)


def daily_cube(filters: UsageFilters, needs=()) -> str:
    """The smallest day rollup that holds the dimensions a read groups by (`needs`) or filters on.

    dayx: every dimension but tenant; dayt: team and tenant only; day: all of them.
    """
    used = set(needs) | {name for name in ("feature", "tenant", "model", "source", "prompt")
                         if getattr(filters, name)}
    if "tenant" not in used:
        return Granularity.DAY_ALL_TENANTS
    if used <= {"tenant", "team"}:
        return Granularity.DAY_TENANTS
    return Granularity.DAY


def rollups(*, actor, filters: UsageFilters, granularity: str | None = None, needs=()) -> QuerySet[UsageRollup]:
    """Rollup rows in the filters' window and dimensions that the actor may see.

    Daily reads pick the smallest cube that has what the caller groups by (`needs`) and filters on.
    """
    granularity = granularity or filters.granularity
    if granularity == Granularity.DAY:
        granularity = daily_cube(filters, needs)
    start, end = filters.start, filters.end
    if granularity in DAILY:
        start, end = day_start(start), day_start(end - timedelta(microseconds=1)) + timedelta(days=1)
    rows = UsageRollup.objects.filter(granularity=granularity, bucket_start__gte=start, bucket_start__lt=end)
    visible = visible_team_ids(actor)
    if visible is not None:
        rows = rows.filter(team_id__in=visible)
    if filters.team_ids:
        rows = rows.filter(team_id__in=filters.team_ids)
    for name in ("feature", "tenant", "model", "source"):
        value = getattr(filters, name)
        if value:
            rows = rows.filter(**{name: value})
    if filters.prompt:
        rows = rows.filter(prompt_name=filters.prompt)
    return rows


def histograms(*, actor, filters: UsageFilters) -> QuerySet[UsageTokenHistogram]:
    rows = UsageTokenHistogram.objects.filter(day__gte=filters.start.date(), day__lt=filters.end.date()
                                              if filters.end == day_start(filters.end) else
                                              filters.end.date() + timedelta(days=1))
    visible = visible_team_ids(actor)
    if visible is not None:
        rows = rows.filter(team_id__in=visible)
    if filters.team_ids:
        rows = rows.filter(team_id__in=filters.team_ids)
    for name in ("feature", "model", "source"):
        value = getattr(filters, name)
        if value:
            rows = rows.filter(**{name: value})
    return rows


TOTALS = {
    "events": Sum("requests"), "errors": Sum("errors"), "refused": Sum("refused"),
    "input_tokens": Sum("input_tokens"), "output_tokens": Sum("output_tokens"),
    "cached_input_tokens": Sum("cached_input_tokens"), "reasoning_tokens": Sum("reasoning_tokens"),
    "cost": Sum("cost"), "unpriced": Sum("unpriced"), "cache_savings": Sum("cache_savings"),
    "successes": Sum("successes"), "failures": Sum("failures"),
    "cache_hits": Sum("cache_hits"), "cache_hit_savings": Sum("cache_hit_savings"),
}


def use_case_cache_savings(*, actor, use_case_ids, start: datetime | None = None,
                           end: datetime | None = None) -> dict[int, dict]:
    """Per use case over the UTC days of [start, end) (default: this calendar month so far), in the teams the
    actor may see (the costs report's rule): {use case id: {"requests", "cost", "hits", "saved"}} — spend, and the
    response cache's hits and saving (what its answers would have cost), from the day rollups (their use-case
    dimension; no raw ledger read)."""
    ids = [i for i in use_case_ids if i is not None]
    if not ids:
        return {}
    today = day_start(timezone.now())
    start = start or today.replace(day=1)
    end = end or today + timedelta(days=1)
    rows = (rollups(actor=actor, filters=UsageFilters(start=start, end=end), granularity=Granularity.DAY,
                    needs={"use_case"})
            .filter(use_case_id__in=ids).values("use_case_id")
            .annotate(requests=Sum("requests"), cost=Sum("cost"), hits=Sum("cache_hits"),
                      saved=Sum("cache_hit_savings"))
            .order_by())
    return {r["use_case_id"]: {"requests": r["requests"] or 0, "cost": r["cost"] or Decimal(0),
                               "hits": r["hits"] or 0, "saved": r["saved"] or Decimal(0)} for r in rows}


def request_team(*, request_id: str) -> Team | None:
    """The team that made the call `request_id` on the usage ledger (None if unknown or team-less)."""
    team_id = UsageEvent.objects.filter(request_id=request_id).values_list("team_id", flat=True).first()
    return Team.objects.filter(pk=team_id).first() if team_id else None


def team_names(ids) -> dict[int, str]:
    ids = {i for i in ids if i is not None}
    return dict(Team.objects.filter(pk__in=ids).values_list("pk", "slug")) if ids else {}


def usage_summary(*, actor, filters: UsageFilters, group_by: str) -> dict:
    """Totals of events, tokens and cost per group (the summary API and the dashboards' tables)."""
    column = GROUPS[group_by]
    rows = list(rollups(actor=actor, filters=filters, needs={group_by}).values(column)
                .annotate(**TOTALS).order_by("-cost"))
    names = team_names(r[column] for r in rows) if group_by == "team" else {}
    groups = []
    totals = {key: 0 for key in TOTALS}
    for r in rows:
        key = r[column]
        if group_by == "team":
            key = names.get(key, "(no team)") if key is not None else "(no team)"
        groups.append({"key": key, **{k: r[k] or 0 for k in TOTALS}})
        for k in TOTALS:
            totals[k] += r[k] or 0
    return {"from": filters.start, "to": filters.end, "group_by": group_by, "granularity": filters.granularity,
            "groups": groups, "totals": totals}


def dimension_values(*, actor, days: int = 90) -> dict[str, list[str]]:
    """Distinct features, tenants, models and prompts seen lately, for the filter pickers (cached 10 minutes)."""
    visible = visible_team_ids(actor)
    key = f"costs:dims:{'all' if visible is None else ','.join(map(str, sorted(visible)))}"
    found = cache.get(key)
    if found is not None:
        return found
    since = day_start(timezone.now()) - timedelta(days=days)
    found = {}
    for name, column in (("feature", "feature"), ("tenant", "tenant"), ("model", "model"), ("prompt", "prompt_name")):
        # tenants from the team-and-tenant buckets; the rest from the tenants-merged ones
        granularity = Granularity.DAY_TENANTS if name == "tenant" else Granularity.DAY_ALL_TENANTS
        base = UsageRollup.objects.filter(granularity=granularity, bucket_start__gte=since)
        if visible is not None:
            base = base.filter(team_id__in=visible)
        found[name] = sorted(v for v in base.values_list(column, flat=True).distinct().order_by()[:500] if v)
    cache.set(key, found, 600)
    return found


# --- budgets, anomalies, jobs -------------------------------------------------------------------------------


def budget_list(*, actor) -> QuerySet[Budget]:
    rows = Budget.objects.select_related("team")
    visible = visible_team_ids(actor)
    if visible is not None:
        rows = rows.filter(team_id__in=visible)
    return rows.order_by("team__name", "name")


def active_monthly_budget_amounts(*, team_id: int) -> list:
    """The amounts of a team's active whole-team monthly budgets (no feature or tenant), unchecked: for the
    portal's own checks (reviews' `budget_cap` condition)."""
    return list(Budget.objects.filter(team_id=team_id, is_active=True, period=BudgetPeriodKind.MONTH, feature="",
                                      tenant="").values_list("amount", flat=True))


@dataclass
class BudgetStatus:
    budget: Budget
    period: BudgetPeriod | None
    spent: float
    reserved: float
    pct: float
    level: str  # ok / warn / bad

    @property
    def cap_pct(self) -> float | None:
        if self.budget.hard_cap is None:
            return None
        return 100.0 * (self.spent + self.reserved) / float(self.budget.hard_cap)


def budget_statuses(*, actor, now: datetime | None = None) -> list[BudgetStatus]:
    """Each visible budget with its current period's counter (without creating periods: a read)."""
    now = now or timezone.now()
    budgets = list(budget_list(actor=actor))
    keys = {(b.pk, period_bounds(b.period, now).start) for b in budgets}
    periods = {(p.budget_id, p.period_start): p for p in BudgetPeriod.objects.filter(
        budget_id__in=[b.pk for b in budgets], period_start__in={s for _, s in keys})}
    out = []
    for b in budgets:
        period = periods.get((b.pk, period_bounds(b.period, now).start))
        spent = float(period.spent) if period else 0.0
        reserved = float(period.reserved) if period else 0.0
        pct = 100.0 * spent / float(b.amount)
        level = "bad" if pct >= 100 else ("warn" if pct >= (min(b.thresholds) if b.thresholds else 80) else "ok")
        out.append(BudgetStatus(b, period, spent, reserved, pct, level))
    return out


def anomaly_list(*, actor, days: int = 14):
    since = (timezone.now() - timedelta(days=days)).astimezone(UTC).date()
    rows = CostAnomaly.objects.select_related("team").filter(day__gte=since)
    visible = visible_team_ids(actor)
    if visible is not None:
        rows = rows.filter(team_id__in=visible)
    return rows


def repricing_jobs(limit: int = 10):
    return RepricingJob.objects.select_related("requested_by")[:limit]


@dataclass(frozen=True)
class SpendSummary:
    """The one "last 30 days" figure: the home page, the Costs page, Prices and the model catalog all read it."""

    start: datetime  # the first UTC day of the window
    end: datetime  # exclusive: the start of tomorrow (UTC), so today so far is included
    cost: float
    events: int
    unpriced: int  # events with no price (any status): their cost is unknown, not $0
    models: list[dict]  # [{model, events, cost, unpriced}] per model name in the ledger, most events first

    @property
    def last_day(self) -> datetime:
        return self.end - timedelta(days=1)

    @property
    def unpriced_models(self) -> list[dict]:
        return [{"model": m["model"], "n": m["unpriced"]} for m in self.models if m["unpriced"]]


def spend_summary(*, actor, days: int = 30, now: datetime | None = None) -> SpendSummary:
    """Spend, events and unpriced events of the last `days` UTC days (today included) that the actor may see,
    from the rollups, with the same per-model split. Every page that shows these figures calls this."""
    filters = default_filters(now=now, days=days)
    per_model = list(rollups(actor=actor, filters=filters, needs={"model"}).values("model")
                     .annotate(events=Sum("requests"), cost=Sum("cost"), unpriced=Sum("unpriced"))
                     .order_by("-events", "model"))
    models = [{"model": r["model"], "events": r["events"] or 0, "cost": r["cost"] or 0,
               "unpriced": r["unpriced"] or 0} for r in per_model]
    return SpendSummary(start=filters.start, end=filters.end, cost=sum(m["cost"] for m in models),
                        events=sum(m["events"] for m in models), unpriced=sum(m["unpriced"] for m in models),
                        models=models)


def glance(*, actor) -> dict:
    """Spend (the one 30-day figure), unpriced events, anomalies and budget status at a glance (the PM home)."""
    spend = spend_summary(actor=actor)
    statuses = sorted(budget_statuses(actor=actor), key=lambda s: -s.pct)
    return {"spend": spend, "demo_loading": demo_loading(), "cost_30d": spend.cost, "events_30d": spend.events,
            "unpriced_30d": spend.unpriced, "unpriced_models": spend.unpriced_models[:5],
            "anomalies": list(anomaly_list(actor=actor, days=7)[:5]), "budgets": statuses[:6],
            "budgets_over": sum(1 for s in statuses if s.level == "bad")}




def call_status_choices() -> list[tuple[str, str]]:
    """The statuses a usage event can have (for filters on other apps' pages)."""
    return list(CallStatus.choices)


def guardrail_action_counts(*, actor, gateway_key_ids, start: datetime, end: datetime | None = None) -> list[dict]:
    """Safety events of the gateway per key, use case, direction, check and action since `start` (the events the
    actor may see): [{"gateway_key_id", "use_case_id", "direction", "check", "action", "count"}], most first."""
    events = UsageEvent.objects.filter(guardrail_actions__isnull=False, gateway_key_id__in=list(gateway_key_ids),
                                       occurred_at__gte=start)
    team_ids = visible_team_ids(actor)
    if team_ids is not None:
        events = events.filter(team_id__in=team_ids)
    if end is not None:
        events = events.filter(occurred_at__lt=end)
    counts: dict[tuple, int] = {}
    for key_id, use_case_id, actions in events.values_list("gateway_key_id", "use_case_id", "guardrail_actions"):
        for action in actions or ():
            group = (key_id, use_case_id, action.get("direction", ""), action.get("check", ""), action.get("action", ""))
            counts[group] = counts.get(group, 0) + 1
    names = ("gateway_key_id", "use_case_id", "direction", "check", "action")
    return [{**dict(zip(names, group, strict=True)), "count": n}
            for group, n in sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))]


def _usage_events(*, actor, source: str | None = None, gateway_key_ids=None, status: str | None = None,
                  alias: str | None = None, start: datetime | None = None, end: datetime | None = None,
                  request_id: str | None = None) -> QuerySet[UsageEvent]:
    events = UsageEvent.objects.all()
    team_ids = visible_team_ids(actor)
    if team_ids is not None:
        events = events.filter(team_id__in=team_ids)
    if source:
        events = events.filter(source=source)
    if gateway_key_ids is not None:
        events = events.filter(gateway_key_id__in=list(gateway_key_ids))
    if status:
        events = events.filter(status=status)
    if alias:
        events = events.filter(alias=alias)
    if request_id:
        events = events.filter(request_id=request_id)
    if start is not None:
        events = events.filter(occurred_at__gte=start)
    if end is not None:
        events = events.filter(occurred_at__lt=end)
    return events


def usage_event_log(*, actor, source: str | None = None, gateway_key_ids=None, status: str | None = None,
                    alias: str | None = None, start: datetime | None = None, end: datetime | None = None,
                    request_id: str | None = None, limit: int = 100) -> list[UsageEvent]:
    """The newest raw usage events the actor may see (metadata only: the ledger holds no text), filtered.

    `gateway_key_ids`: only events of these gateway keys (the gateway's request log); `end` is exclusive.
    """
    events = _usage_events(actor=actor, source=source, gateway_key_ids=gateway_key_ids, status=status, alias=alias,
                           start=start, end=end, request_id=request_id)
    return list(events.order_by("-occurred_at", "-id")[:limit])


# --- the hard-capped budgets, for the gateway's reservations in Redis (apps/gateway/budgets.py) ---------------


class _CappedBudgets:
    """Every active budget with a hard cap, in this process, valid while the stamp it was read under is."""

    def __init__(self):
        self.stamp: bytes | None = None
        self.budgets: tuple[Budget, ...] = ()


_capped = _CappedBudgets()


def capped_budgets_stamp_key() -> str:
    """The Redis key of the stamp that moves (on commit) whenever a budget is saved or deleted."""
    return portal_redis.key("costs", "capped-budgets-stamp")


def capped_budgets_cached(stamp: bytes) -> tuple[Budget, ...] | None:
    """The capped budgets read under `stamp` (no query), or None when they must be read again."""
    return _capped.budgets if _capped.stamp == stamp else None


def capped_budgets(stamp: bytes) -> tuple[Budget, ...]:
    """Every active budget with a hard cap (a few rows: one query, only when the stamp moved), cached under
    `stamp` — the value of capped_budgets_stamp_key() the caller read before calling."""
    cached = capped_budgets_cached(stamp)
    if cached is None:
        cached = tuple(b for b in active_budgets() if b.hard_cap is not None)
        teams = Team.objects.in_bulk({b.team_id for b in cached if b.team_id})
        for budget in cached:  # the refusal names the scope (scope_label) without a query on the async path
            if budget.team_id:
                budget.team = teams[budget.team_id]
        _capped.stamp, _capped.budgets = stamp, cached
    return cached


def capped_budgets_reset() -> None:
    """Forget the capped budgets read in this process (tests: the database was emptied under the cache)."""
    _capped.stamp, _capped.budgets = None, ()


def capped_budgets_changed() -> None:
    """A budget changed: every process reads the capped budgets again after this transaction commits."""

    def bump() -> None:
        _capped.stamp = None
        portal_redis.client().set(capped_budgets_stamp_key(), uuid.uuid4().hex)

    transaction.on_commit(bump)


def budget_usage(budget: Budget, bounds: PeriodBounds) -> Decimal:
    """What the ledger holds against a budget's period: its scope's settled spend (the rollups, which every
    recorded call reaches in its own transaction: the gateway's, the portal's own and ingested usage) plus the
    portal's own calls' reservations in flight. The gateway seeds and reconciles its Redis counters with it."""
    reserved = (BudgetPeriod.objects.filter(budget=budget, period_start=bounds.start)
                .values_list("reserved", flat=True).first())
    return scope_spend(budget, bounds.counted_from, bounds.end) + (reserved or Decimal(0))
def gateway_cache_summary(*, actor, gateway_key_ids, start: datetime, end: datetime | None = None,
                          status: str | None = None, alias: str | None = None) -> dict:
    """The gateway response cache per key over a window of raw events: requests, hits, hit rate, saved.

    {"keys": {key_id: {...}}, "total": {...}}; each {"requests", "hits", "hit_rate_pct", "saved"}.
    """
    rows = (_usage_events(actor=actor, source="gateway", gateway_key_ids=gateway_key_ids, status=status,
                          alias=alias, start=start, end=end)
            .values("gateway_key_id")
            .annotate(requests=Count("id"), hits=Count("id", filter=Q(cache_hit=True)), saved=Sum("cache_saving"))
            .order_by())

    def figures(requests: int, hits: int, saved) -> dict:
        return {"requests": requests, "hits": hits, "saved": saved or Decimal(0),
                "hit_rate_pct": 100.0 * hits / requests if requests else None}

    keys = {r["gateway_key_id"]: figures(r["requests"], r["hits"], r["saved"]) for r in rows}
    total = figures(sum(k["requests"] for k in keys.values()), sum(k["hits"] for k in keys.values()),
                    sum((k["saved"] for k in keys.values()), Decimal(0)))
    return {"keys": keys, "total": total}
