"""The dashboards' numbers, from rollups only. Each report is a table (columns + rows) plus a plotly figure
built from the same rows, so the chart, its table and its CSV export always agree.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.html import escape

from apps.core import charts
from apps.costs.budgets import period_bounds
from apps.costs.forecast import forecast_period
from apps.costs.models import Budget, BudgetPeriodKind, Granularity, Price, Source
from apps.costs.panels import use_case_names
from apps.costs.pricing import MILLION, PriceBook
from apps.costs.rollups import day_start, percentile_from_bins
from apps.costs.selectors import GROUPS, UsageFilters, histograms, rollups, team_names, visible_team_ids
from apps.costs.templatetags.costs import cell

TOP_GROUPS = 8


@dataclass
class Column:
    key: str
    label: str
    kind: str = "text"  # text, int, money, pct, float

    @property
    def numeric(self) -> bool:
        return self.kind != "text"


@dataclass
class Report:
    name: str
    title: str
    columns: list[Column]
    rows: list[dict]
    figure: dict | None = None
    summary: dict = field(default_factory=dict)
    note: str = ""

    def chart_html(self) -> str:
        return charts.to_html(self.figure) if self.figure else ""

    def table_body_html(self) -> str:
        """The table's rows, formatted once in Python: a template loop over hundreds of cells costs more than
        the query behind the chart."""
        numeric = [c.numeric for c in self.columns]
        out = []
        for row in self.rows:
            cells = "".join(f'<td class="num">{escape(cell(row, c))}</td>' if n else f"<td>{escape(cell(row, c))}</td>"
                            for c, n in zip(self.columns, numeric, strict=True))
            out.append(f"<tr>{cells}</tr>")
        return "\n".join(out)


def _f(value) -> float:
    return float(value or 0)


def _label(group_by: str, value, names: dict[int, str]) -> str:
    if group_by == "team":
        return names.get(value, "(no team)") if value is not None else "(no team)"
    return value or "(none)"


def _change(current: float, previous: float) -> float | None:
    if not previous:
        return None
    return 100.0 * (current - previous) / previous


# --- spend over time ----------------------------------------------------------------------------------------


def spend_over_time(*, actor, filters: UsageFilters, group_by: str = "team") -> Report:
    column = GROUPS[group_by]
    granularity = filters.granularity
    rows = list(rollups(actor=actor, filters=filters, granularity=granularity, needs={group_by})
                .values("bucket_start", column).annotate(cost=Sum("cost"), events=Sum("requests")).order_by())
    previous = rollups(actor=actor, filters=filters.previous(), granularity=Granularity.DAY).aggregate(
        cost=Sum("cost"))["cost"]
    names = team_names(r[column] for r in rows) if group_by == "team" else {}
    totals: dict[str, float] = defaultdict(float)
    for r in rows:
        totals[_label(group_by, r[column], names)] += _f(r["cost"])
    top = [g for g, _ in sorted(totals.items(), key=lambda kv: -kv[1])[:TOP_GROUPS]]
    buckets = _buckets(filters, granularity)
    series: dict[str, dict[datetime, float]] = {g: defaultdict(float) for g in top}
    other: dict[datetime, float] = defaultdict(float)
    events: dict[tuple[datetime, str], int] = defaultdict(int)
    for r in rows:
        group = _label(group_by, r[column], names)
        target = series.get(group, other)
        target[r["bucket_start"]] += _f(r["cost"])
        events[(r["bucket_start"], group if group in series else "other")] += r["events"] or 0
    if other:
        series["other"] = other
    table = [{"bucket": b, "group": g, "cost": values.get(b, 0.0), "events": events.get((b, g), 0)}
             for b in buckets for g, values in series.items() if values.get(b) or events.get((b, g))]
    total = sum(totals.values())
    change = _change(total, _f(previous))
    fmt = "%Y-%m-%d %H:00" if granularity == Granularity.HOUR else "%Y-%m-%d"
    figure = charts.stacked_bars(x=[b.strftime(fmt) for b in buckets],
                                 series={g: [round(v.get(b, 0.0), 4) for b in buckets] for g, v in series.items()},
                                 y_title="USD")
    return Report(
        name="spend", title=f"Spend over time by {group_by}",
        columns=[Column("bucket", "Hour" if granularity == Granularity.HOUR else "Day"), Column("group", group_by.title()),
                 Column("cost", "Cost (USD)", "money"), Column("events", "Events", "int")],
        rows=[{**r, "bucket": r["bucket"].strftime(fmt)} for r in table], figure=figure,
        summary={"total": total, "previous": _f(previous), "change_pct": change, "days": filters.days},
    )


def _buckets(filters: UsageFilters, granularity: str) -> list[datetime]:
    step = timedelta(hours=1) if granularity == Granularity.HOUR else timedelta(days=1)
    at = filters.start if granularity == Granularity.HOUR else day_start(filters.start)
    out = []
    while at < filters.end and len(out) < 2000:
        out.append(at)
        at += step
    return out


# --- top cost drivers ---------------------------------------------------------------------------------------

DRIVERS = (("feature", "feature"), ("tenant", "tenant"), ("model", "model"), ("prompt", "prompt_name"))


def top_drivers(*, actor, filters: UsageFilters, limit: int = 10) -> Report:
    """The largest features, tenants, models and prompts this period, with the change from the period before."""
    out = []
    span = filters.end - filters.start
    both = UsageFilters(**{**filters.__dict__, "start": filters.start - span})
    for kind, column in DRIVERS:
        rows = (rollups(actor=actor, filters=both, granularity=Granularity.DAY, needs={kind})
                .values(column)
                .annotate(spend=Sum("cost", filter=_in_current(filters)),
                          before=Sum("cost", filter=_in_previous(filters)),
                          events=Sum("requests", filter=_in_current(filters)))
                .order_by("-spend"))
        for r in [r for r in rows if r["spend"]][:limit]:
            current, before = _f(r["spend"]), _f(r["before"])
            out.append({"kind": kind, "name": r[column] or "(none)", "cost": current, "previous": before,
                        "change_pct": _change(current, before), "events": r["events"] or 0})
    total = sum(r["cost"] for r in out if r["kind"] == "feature") or 1.0
    for r in out:
        r["share_pct"] = 100.0 * r["cost"] / total
    features = [r for r in out if r["kind"] == "feature"][:limit]
    figure = charts.horizontal_bars(
        labels=[r["name"] for r in features][::-1],
        bars={"this period": [round(r["cost"], 4) for r in features][::-1],
              "period before": [round(r["previous"], 4) for r in features][::-1]},
        x_title="USD", title="Features")
    return Report(
        name="drivers", title="Top cost drivers",
        columns=[Column("kind", "Kind"), Column("name", "Name"), Column("cost", "Cost (USD)", "money"),
                 Column("previous", "Period before", "money"), Column("change_pct", "Change", "pct"),
                 Column("share_pct", "Share", "pct"), Column("events", "Events", "int")],
        rows=out, figure=figure)


def _in_current(filters: UsageFilters):
    return Q(bucket_start__gte=day_start(filters.start))


def _in_previous(filters: UsageFilters):
    return Q(bucket_start__lt=day_start(filters.start))


# --- tokens per request --------------------------------------------------------------------------------------


def token_percentiles(*, actor, filters: UsageFilters) -> Report:
    """Input tokens per successful request, P50 and P95 per feature (prompt bloat shows here), this period
    against the period before."""
    current = _bins_by_feature(histograms(actor=actor, filters=filters))
    before = _bins_by_feature(histograms(actor=actor, filters=filters.previous()))
    rows = []
    for feature, bins in current.items():
        p50, p95 = percentile_from_bins(bins, 0.5), percentile_from_bins(bins, 0.95)
        old = before.get(feature)
        old95 = percentile_from_bins(old, 0.95) if old else None
        rows.append({"feature": feature or "(none)", "requests": sum(bins.values()), "p50": p50, "p95": p95,
                     "p95_before": old95, "p95_change_pct": _change(p95 or 0, old95 or 0) if old95 else None})
    rows.sort(key=lambda r: -(r["p95"] or 0))
    figure = charts.grouped_bars(x=[r["feature"] for r in rows],
                                 bars={"P50": [round(r["p50"] or 0) for r in rows],
                                       "P95": [round(r["p95"] or 0) for r in rows]}, y_title="input tokens")
    return Report(
        name="tokens", title="Input tokens per request (P50 / P95) by feature",
        columns=[Column("feature", "Feature"), Column("requests", "Requests", "int"), Column("p50", "P50", "int"),
                 Column("p95", "P95", "int"), Column("p95_before", "P95 period before", "int"),
                 Column("p95_change_pct", "P95 change", "pct")],
        rows=rows, figure=figure,
        note="From log-scale histograms (4 bins per doubling): figures are within about ±9%. Successful calls only; "
             "not split by tenant.")


def _bins_by_feature(rows) -> dict[str, dict[int, int]]:
    out: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows.values("feature", "bin").annotate(n=Sum("requests")).order_by():
        out[r["feature"]][r["bin"]] += r["n"]
    return out


# --- cost per successful outcome ---------------------------------------------------------------------------


def cost_per_success(*, actor, filters: UsageFilters) -> Report:
    """Ledger joined with outcomes (feedback API and eval results): cost per success, per feature and prompt version."""
    rows = (rollups(actor=actor, filters=filters, granularity=Granularity.DAY, needs={"feature", "prompt"})
            .values("feature", "prompt_name", "prompt_version")
            .annotate(cost=Sum("cost"), events=Sum("requests"), successes=Sum("successes"), failures=Sum("failures"))
            .order_by("-cost"))
    out = []
    for r in rows:
        if not r["successes"] and not r["failures"]:
            continue
        judged = (r["successes"] or 0) + (r["failures"] or 0)
        out.append({
            "feature": r["feature"] or "(none)",
            "prompt": f"{r['prompt_name']} v{r['prompt_version']}" if r["prompt_name"] and r["prompt_version"]
            else (r["prompt_name"] or "(none)"),
            "events": r["events"], "successes": r["successes"], "failures": r["failures"],
            "success_rate_pct": 100.0 * (r["successes"] or 0) / judged if judged else None,
            "cost": _f(r["cost"]),
            "cost_per_success": _f(r["cost"]) / r["successes"] if r["successes"] else None,
        })
    out.sort(key=lambda r: (r["feature"], r["prompt"]))
    shown = [r for r in out if r["cost_per_success"] is not None][:20]
    figure = charts.horizontal_bars(labels=[f"{r['feature']} · {r['prompt']}" for r in shown][::-1],
                                    bars={"USD per success": [round(r["cost_per_success"], 6) for r in shown][::-1]},
                                    x_title="USD per successful outcome")
    return Report(
        name="outcomes", title="Cost per successful outcome",
        columns=[Column("feature", "Feature"), Column("prompt", "Prompt version"), Column("events", "Events", "int"),
                 Column("successes", "Successes", "int"), Column("failures", "Failures", "int"),
                 Column("success_rate_pct", "Success rate", "pct"), Column("cost", "Cost (USD)", "money"),
                 Column("cost_per_success", "Cost per success", "money")],
        rows=out, figure=figure,
        note="Cost of every call of the feature and prompt version, divided by the calls marked successful. "
             "Calls with no outcome yet count in cost, not in the rate.")


# --- cache savings and what-if ------------------------------------------------------------------------------


def cache_savings(*, actor, filters: UsageFilters) -> Report:
    rows = (rollups(actor=actor, filters=filters, granularity=Granularity.DAY, needs={"model"}).values("model")
            .annotate(cost=Sum("cost"), savings=Sum("cache_savings"), input_tokens=Sum("input_tokens"),
                      cached=Sum("cached_input_tokens"))
            .order_by("-savings"))
    out = []
    for r in rows:
        if not r["input_tokens"]:
            continue
        out.append({"model": r["model"], "cached_tokens": r["cached"] or 0, "input_tokens": r["input_tokens"],
                    "cached_pct": 100.0 * (r["cached"] or 0) / r["input_tokens"], "savings": _f(r["savings"]),
                    "cost": _f(r["cost"])})
    figure = charts.grouped_bars(x=[r["model"] for r in out],
                                 bars={"paid": [round(r["cost"], 4) for r in out],
                                       "saved by caching": [round(r["savings"], 4) for r in out]},
                                 y_title="USD", stacked=True)
    return Report(
        name="cache", title="Cache savings",
        columns=[Column("model", "Model"), Column("input_tokens", "Input tokens", "int"),
                 Column("cached_tokens", "Cached tokens", "int"), Column("cached_pct", "Cached", "pct"),
                 Column("cost", "Paid (USD)", "money"), Column("savings", "Saved (USD)", "money")],
        rows=out, figure=figure, summary={"savings": sum(r["savings"] for r in out)},
        note="Saved = cached input tokens × (input price − cached input price) at the price of each call.")


CACHE_SOURCES = ("gateway", "portal")  # how the response cache's report splits traffic (Source: the rest is portal)


def cache_source(source: str) -> str:
    """The response cache report's side of a ledger source: the gateway's traffic, or the portal's own calls
    (playground, eval, rag, api)."""
    return "gateway" if source == Source.GATEWAY else "portal"


def gateway_cache(*, actor, filters: UsageFilters) -> Report:
    """What the response cache (the call path's, ADR 0099) saved, per team and source — the gateway's traffic and
    the portal's own calls (playground, evals, RAG answers) — and per day: hits answered at no provider cost,
    valued at what each answer cost when it was first made (UsageEvent.cache_saving). The chart keeps its name
    ("gatewaycache": links and CSV exports made before stay valid)."""
    rows = list(rollups(actor=actor, filters=filters, granularity=Granularity.DAY, needs={"team", "source"})
                .values("bucket_start", "team_id", "source")
                .annotate(hits=Sum("cache_hits"), saved=Sum("cache_hit_savings"), events=Sum("requests")).order_by())
    names = team_names(r["team_id"] for r in rows)
    per_group: dict[tuple[str, str], dict] = defaultdict(lambda: {"hits": 0, "events": 0, "saved": 0.0})
    series: dict[str, dict[datetime, float]] = {side: defaultdict(float) for side in CACHE_SOURCES}
    for r in rows:
        side = cache_source(r["source"])
        totals = per_group[(_label("team", r["team_id"], names), side)]
        totals["hits"] += r["hits"] or 0
        totals["events"] += r["events"] or 0
        totals["saved"] += _f(r["saved"])
        series[side][r["bucket_start"]] += _f(r["saved"])
    out = [{"team": team, "source": side, "events": t["events"], "hits": t["hits"],
            "hit_rate_pct": 100.0 * t["hits"] / t["events"] if t["events"] else 0.0, "saved": t["saved"]}
           for (team, side), t in sorted(per_group.items(), key=lambda kv: (-kv[1]["saved"], kv[0])) if t["hits"]]
    buckets = _buckets(filters, Granularity.DAY)
    figure = charts.stacked_bars(x=[b.strftime("%Y-%m-%d") for b in buckets],
                                 series={side: [round(values.get(b, 0.0), 4) for b in buckets]
                                         for side, values in series.items() if any(values.values())},
                                 y_title="USD saved")
    by_source = {side: sum(r["saved"] for r in out if r["source"] == side) for side in CACHE_SOURCES}
    return Report(
        name="gatewaycache", title="Saved by the response cache",
        columns=[Column("team", "Team"), Column("source", "Source"), Column("events", "Requests", "int"),
                 Column("hits", "Cache hits", "int"), Column("hit_rate_pct", "Hit rate", "pct"),
                 Column("saved", "Saved (USD)", "money")],
        rows=out, figure=figure,
        summary={"saved": sum(by_source.values()), "hits": sum(r["hits"] for r in out), "by_source": by_source},
        note="Answers the response cache gave instead of a provider (cost $0 on the ledger), valued at what each "
             "answer cost when it was first made. Source: gateway = the gateway's traffic (keys opt in, or the "
             "prompt version for prompt:… requests); portal = the portal's own calls (playground, evals, RAG "
             "answers, whose prompt version opts in). See docs/gateway.md.")


USE_CASE_BARS = 15  # the chart's largest savings; the table and CSV keep every row
NO_USE_CASE = "(no use case)"


def _use_case_label(use_case_id, names: dict, visible) -> str:
    """A use case's title; its id alone when reviews does not know it or it belongs to a team the viewer may not
    see (an ingested event may name any id: never another team's title)."""
    if use_case_id is None:
        return NO_USE_CASE
    title, owner = names.get(use_case_id, (None, None))
    if title is None or (visible is not None and owner not in visible):
        return f"use case #{use_case_id}"
    return title


def _short(label: str, most: int = 40) -> str:
    """A chart axis label: long ones take the plot's width (the table keeps them whole)."""
    return f"{label[:most - 1]}…" if len(label) > most else label


def cache_by_use_case(*, actor, filters: UsageFilters) -> Report:
    """What the response cache saved per use case (and team), with what the use case paid: the same day rollups
    and filters as *Saved by the response cache* (its total is this table's), grouped by the events' use case
    (the rollups' use-case dimension). Hits with no use case are one row, so the rows add up to the total."""
    rows = list(rollups(actor=actor, filters=filters, granularity=Granularity.DAY, needs={"team", "use_case"})
                .values("use_case_id", "team_id")
                .annotate(hits=Sum("cache_hits"), saved=Sum("cache_hit_savings"), events=Sum("requests"),
                          cost=Sum("cost")).order_by())
    teams = team_names(r["team_id"] for r in rows)
    names = use_case_names(r["use_case_id"] for r in rows if r["hits"])
    visible = visible_team_ids(actor)
    visible = None if visible is None else set(visible)
    out = []
    for r in rows:
        if not r["hits"]:
            continue
        events = r["events"] or 0
        out.append({"use_case": _use_case_label(r["use_case_id"], names, visible),
                    "use_case_id": r["use_case_id"], "team": _label("team", r["team_id"], teams), "events": events,
                    "hits": r["hits"], "hit_rate_pct": 100.0 * r["hits"] / events if events else 0.0,
                    "cost": _f(r["cost"]), "saved": _f(r["saved"])})
    out.sort(key=lambda r: (-r["saved"], r["use_case"], r["team"]))
    shown = out[:USE_CASE_BARS]
    twice = {r["use_case"] for r in shown if sum(1 for o in shown if o["use_case"] == r["use_case"]) > 1}
    labels = [_short(f"{r['use_case']} · {r['team']}" if r["use_case"] in twice else r["use_case"]) for r in shown]
    figure = charts.horizontal_bars(labels=labels[::-1],
                                    bars={"saved by the response cache": [round(r["saved"], 4) for r in shown][::-1],
                                          "paid": [round(r["cost"], 4) for r in shown][::-1]},
                                    x_title="USD")
    return Report(
        name="cacheusecase", title="Saved by the response cache, by use case",
        columns=[Column("use_case", "Use case"), Column("team", "Team"), Column("events", "Requests", "int"),
                 Column("hits", "Cache hits", "int"), Column("hit_rate_pct", "Hit rate", "pct"),
                 Column("cost", "Paid (USD)", "money"), Column("saved", "Saved (USD)", "money")],
        rows=out, figure=figure,
        summary={"saved": sum(r["saved"] for r in out), "hits": sum(r["hits"] for r in out),
                 "use_cases": len({r["use_case_id"] for r in out if r["use_case_id"] is not None})},
        note="The use case is the call's: a gateway key bound to it, the portal's own calls made for it, or "
             "use_case_id on ingested usage. Saved as in the chart above; paid = what the use case's calls cost in "
             "the same filters (its hits cost $0).")


def last_month(now: datetime | None = None) -> tuple[datetime, datetime]:
    this = day_start(now or timezone.now()).replace(day=1)
    prev = (this - timedelta(days=1)).replace(day=1)
    return prev, this


def what_if(*, actor, filters: UsageFilters, feature: str, target_model: str, now: datetime | None = None) -> Report:
    """What a feature's traffic of last month would have cost on another model, from the recorded token counts
    (cached and reasoning tokens priced as the target model prices them, today)."""
    start, end = last_month(now)
    month = UsageFilters(**{**filters.__dict__, "start": start, "end": end, "feature": feature or filters.feature})
    rows = list(rollups(actor=actor, filters=month, granularity=Granularity.DAY, needs={"model", "feature"})
                .values("model")
                .annotate(cost=Sum("cost"), events=Sum("requests"), unpriced=Sum("unpriced"),
                          input_tokens=Sum("input_tokens"), output_tokens=Sum("output_tokens"),
                          cached=Sum("cached_input_tokens"), reasoning=Sum("reasoning_tokens")).order_by("-cost"))
    target = PriceBook.load([target_model]).at(target_model, "", timezone.now()) if target_model else None
    out = []
    for r in rows:
        alt = None
        if target is not None:
            cached = min(r["cached"] or 0, r["input_tokens"] or 0)
            reasoning = min(r["reasoning"] or 0, r["output_tokens"] or 0)
            cp = target.cached_input_per_mtok if target.cached_input_per_mtok is not None else target.input_per_mtok
            rp = target.reasoning_per_mtok if target.reasoning_per_mtok is not None else target.output_per_mtok
            alt = float(((r["input_tokens"] - cached) * target.input_per_mtok + cached * cp
                         + (r["output_tokens"] - reasoning) * target.output_per_mtok + reasoning * rp) / MILLION)
        out.append({"model": r["model"], "events": r["events"], "input_tokens": r["input_tokens"],
                    "output_tokens": r["output_tokens"], "cost": _f(r["cost"]), "unpriced": r["unpriced"],
                    "target_cost": alt, "difference": None if alt is None else alt - _f(r["cost"])})
    actual = sum(r["cost"] for r in out)
    projected = sum(r["target_cost"] or 0 for r in out) if target else None
    figure = charts.grouped_bars(x=[r["model"] for r in out],
                                 bars={"actual": [round(r["cost"], 4) for r in out],
                                       f"on {target_model}": [round(r["target_cost"] or 0, 4) for r in out]},
                                 y_title="USD") if target else None
    return Report(
        name="whatif", title=f"What if {feature or 'all features'} had used {target_model or '…'} last month",
        columns=[Column("model", "Model used"), Column("events", "Events", "int"),
                 Column("input_tokens", "Input tokens", "int"), Column("output_tokens", "Output tokens", "int"),
                 Column("cost", "Actual (USD)", "money"), Column("target_cost", f"On {target_model or 'target'} (USD)", "money"),
                 Column("difference", "Difference", "money"), Column("unpriced", "Unpriced events", "int")],
        rows=out, figure=figure,
        summary={"actual": actual, "projected": projected, "month": start, "target": target_model,
                 "target_priced": target is not None,
                 "saving_pct": _change(projected, actual) if projected is not None and actual else None},
        note="Same token counts, priced at the target model's current price; quality and token counts on "
             "another model would differ.")


def priced_models() -> list[str]:
    return sorted(set(Price.objects.filter(valid_to__isnull=True).values_list("model_name", flat=True)))


# --- month-end forecast -------------------------------------------------------------------------------------


def forecast(*, actor, filters: UsageFilters, now: datetime | None = None) -> Report:
    """Month-end spend per team and per feature: this month so far plus a weekday-aware run rate, 80% range."""
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    bounds = period_bounds(BudgetPeriodKind.MONTH, now)
    start = min(bounds.start, day_start(now) - timedelta(days=28))
    window = UsageFilters(**{**filters.__dict__, "start": start, "end": day_start(now) + timedelta(days=1)})
    rows = (rollups(actor=actor, filters=window, granularity=Granularity.DAY, needs={"feature"})
            .values("bucket_start", "team_id", "feature").annotate(cost=Sum("cost")).order_by())
    per_team: dict = defaultdict(lambda: defaultdict(float))
    per_feature: dict = defaultdict(lambda: defaultdict(float))
    for r in rows:
        d = r["bucket_start"].date()
        per_team[r["team_id"]][d] += _f(r["cost"])
        per_feature[(r["team_id"], r["feature"])][d] += _f(r["cost"])
    names = team_names(per_team)
    budgets = _month_budgets(actor)
    out = []
    for scope, series in [(("team", t, ""), s) for t, s in per_team.items()] + \
                         [(("feature", t, f), s) for (t, f), s in per_feature.items()]:
        result = forecast_period(series, today=today, period_start=bounds.start.date(), period_end=bounds.end.date())
        if result.projected < 0.005 and result.to_date < 0.005:
            continue
        kind, team_id, feature = scope
        budget = budgets.get((team_id, feature if kind == "feature" else ""))
        out.append({"scope": kind, "team": names.get(team_id, "(no team)"), "feature": feature if kind == "feature" else "",
                    "to_date": result.to_date, "projected": result.projected, "low": result.low, "high": result.high,
                    "budget": float(budget.amount) if budget else None,
                    "over_budget": bool(budget and result.projected > float(budget.amount))})
    out.sort(key=lambda r: (r["scope"] != "team", -r["projected"]))
    teams = [r for r in out if r["scope"] == "team"]
    figure = charts.forecast_bars(labels=[r["team"] for r in teams], to_date=[r["to_date"] for r in teams],
                                  projected=[r["projected"] for r in teams], low=[r["low"] for r in teams],
                                  high=[r["high"] for r in teams], budget=[r["budget"] for r in teams])
    return Report(
        name="forecast", title=f"Month-end forecast ({bounds.start:%B %Y})",
        columns=[Column("scope", "Scope"), Column("team", "Team"), Column("feature", "Feature"),
                 Column("to_date", "So far (USD)", "money"), Column("projected", "Forecast (USD)", "money"),
                 Column("low", "80% low", "money"), Column("high", "80% high", "money"),
                 Column("budget", "Budget", "money")],
        rows=out, figure=figure,
        note="Forecast = spend so far + for each remaining day the mean of the same weekday over the last four "
             "weeks; the range is ±1.28·σ·√(remaining days) (80%).")


def _month_budgets(actor) -> dict:
    visible = visible_team_ids(actor)
    rows = Budget.objects.filter(is_active=True, period=BudgetPeriodKind.MONTH, tenant="")
    if visible is not None:
        rows = rows.filter(team_id__in=visible)
    return {(b.team_id, b.feature): b for b in rows}


# --- registry --------------------------------------------------------------------------------------------------

REPORTS = {
    "spend": spend_over_time,
    "drivers": top_drivers,
    "tokens": token_percentiles,
    "outcomes": cost_per_success,
    "cache": cache_savings,
    "gatewaycache": gateway_cache,
    "cacheusecase": cache_by_use_case,
    "forecast": forecast,
    "whatif": what_if,
}

