"""Pages of the scorecards: the portfolio (every visible use case × KPI, filters, team roll-ups, CSV/JSON), one
use case's scorecard (value, target, status, CI, trend, the data behind it), its targets and their history.
Thin: parse, call a selector or a service, render. Nothing here computes a KPI."""

from __future__ import annotations

import csv
import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.permissions import Action, teams_for
from apps.core import charts
from apps.core.forms import service_errors_on
from apps.core.htmx import is_fragment_request, render_page_or_fragment
from apps.reviews.rules import TIER_LABELS, TIER_ORDER
from apps.reviews.selectors import use_case_get
from apps.scorecards import selectors, services
from apps.scorecards.exports import scorecard_dict, snapshot_csv_rows
from apps.scorecards.forms import TargetForm, TargetUsersForm
from apps.scorecards.kpis import KPIS, SHORT, display
from apps.scorecards.models import Status


def _filters(request) -> selectors.PortfolioFilters:
    get = request.GET
    status = get.get("status", "")
    tier = get.get("tier", "")
    return selectors.PortfolioFilters(team=get.get("team", "")[:100], tier=tier if tier in TIER_ORDER else "",
                                      status=status if status in Status.values else "")


PAGE_SIZE = 50  # use cases per page of the portfolio, worst first; the next page comes by htmx under them


def _page_number(request) -> int:
    try:
        return max(1, int(request.GET.get("page", "1")))
    except ValueError:
        return 1


@login_required
@require_GET
def portfolio(request):
    filters = _filters(request)
    fmt = request.GET.get("format")
    if fmt in ("csv", "json"):
        rows = selectors.portfolio(actor=request.user, filters=filters)
        if fmt == "csv":
            return _csv("scorecards-portfolio.csv", snapshot_csv_rows(rows))
        return _json({"use_cases": [{"use_case": r.use_case_id, "title": r.title, "team": r.team, "tier": r.tier,
                                     "status": r.status, "computed_at": r.computed_at.isoformat(),
                                     "kpis": {k: {"status": c[0], "value": c[1]} for k, c in r.cells.items()}}
                                    for r in rows]})
    number = _page_number(request)
    rows = selectors.portfolio(actor=request.user, filters=filters, offset=(number - 1) * PAGE_SIZE,
                               limit=PAGE_SIZE + 1)  # one more: is there a next page?
    has_next, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
    query = "&".join(f"{k}={v}" for k, v in vars(filters).items() if v)
    paging = {"rows_html": selectors.portfolio_table_html(rows), "shown": len(rows), "page": number,
              "next_page": number + 1 if has_next else None, "query": query, "kpi_count": len(KPIS) + 3}
    if request.GET.get("rows") and is_fragment_request(request):  # "Show the next 50": only the rows, appended
        return render(request, "scorecards/portfolio.html#rows", paging)
    counts = selectors.portfolio_counts(actor=request.user, filters=filters)
    teams = teams_for(request.user, Action.VIEW)
    team_names = dict(teams.values_list("pk", "name"))
    portfolio_rollup, team_rollups = selectors.rollups(actor=request.user, team_ids=list(team_names))
    context = {
        **paging, "row_count": counts.total, "first": (number - 1) * PAGE_SIZE,
        "status_counts": [(value, label, counts.by_status.get(value, 0), selectors.STATUS_CLASS.get(value, ""))
                          for value, label in Status.choices if counts.by_status.get(value)],
        "kpis": [(SHORT.get(k, k), kpi.label) for k, kpi in KPIS.items()], "filters": filters,
        "teams": teams, "tiers": [(t, TIER_LABELS[t]) for t in TIER_ORDER], "statuses": Status.choices,
        "rollup_rows": [
            (name, r.use_cases, [r.kpis.get(k) for k in KPIS])
            for name, r in ([("Portfolio", portfolio_rollup)] if portfolio_rollup else [])
            + [(team_names.get(r.team_id, r.team_id), r) for r in team_rollups]],
        "computed_at": counts.computed_at,
    }
    return render_page_or_fragment(request, "scorecards/portfolio.html", context, "results")


def _focus(values: list[dict], key: str):
    by_key = {v["kpi"].key: v for v in values}
    if key in by_key:
        return by_key[key]
    for status in (Status.MISSED, Status.AT_RISK):
        for v in values:
            if v["value"].status == status:
                return v
    return values[0] if values else None


def _trend_chart(item) -> str:
    kpi, value = item["kpi"], item["value"]
    scale = 100 if kpi.unit in ("ratio", "growth") else 1
    points = [(end, None if v is None else round(v * scale, 4), item["display"]) for end, v in value.trend]
    series = {kpi.label: points}
    if value.target is not None and kpi.mode == "absolute":
        series["target"] = [(end, round(value.target * scale, 4), "target") for end, _v in value.trend]
    unit = {"ratio": "%", "growth": "% vs the previous quarter", "ms": "ms", "usd": "USD", "tokens": "tokens", "hours": "hours", "minutes": "minutes",
            "count": "per quarter"}
    return charts.to_html(charts.category_lines(series=series, y_title=unit.get(kpi.unit, ""),
                                                x_title="28 days ending"))


def _scorecard_context(request, use_case, *, target_form=None, users_form=None) -> dict:
    snapshot = selectors.snapshot_of(use_case)
    values = selectors.kpi_values(snapshot)
    focus = _focus(values, request.GET.get("kpi", ""))
    may_edit = services.may_edit_targets(request.user, use_case)
    return {
        "use_case": use_case, "snapshot": snapshot, "values": values, "focus": focus,
        "chart": _trend_chart(focus) if focus and focus["value"].trend else "",
        "trend_rows": [(end, display(focus["kpi"], v)) for end, v in focus["value"].trend] if focus else [],
        "may_edit": may_edit, "history": selectors.target_history(use_case),
        "target_users": selectors.target_users(use_case),
        "target_form": target_form or TargetForm(initial={"kpi": focus["kpi"].key if focus else None}),
        "users_form": users_form or TargetUsersForm(initial={"target_users": selectors.target_users(use_case)}),
    }


@login_required
@require_GET
def use_case_scorecard(request, pk: int):
    use_case = use_case_get(actor=request.user, pk=pk)
    fmt = request.GET.get("format")
    if fmt in ("csv", "json"):
        data = scorecard_dict(use_case, selectors.snapshot_of(use_case))
        if fmt == "json":
            return _json(data)
        rows = [["kpi", "label", "value", "target", "status", "ci_low", "ci_high", "sample", "detail", "source",
                 "computed_at"]]
        rows += [[k["kpi"], k["label"], k["value"], k["target"], k["status"], k["ci_low"], k["ci_high"], k["sample"],
                  k["detail"], k["source_url"], k["computed_at"]] for k in data["kpis"]]
        return _csv(f"scorecard-use-case-{use_case.pk}.csv", rows)
    return render_page_or_fragment(request, "scorecards/use_case.html", _scorecard_context(request, use_case),
                                   "focus")


def _target_edit(request, pk: int, form_class, form_name: str, save) -> HttpResponse:
    """The owner's target forms: permission, the service, its errors next to the fields (400), or back to the page."""
    use_case = use_case_get(actor=request.user, pk=pk)
    if not services.may_edit_targets(request.user, use_case):
        raise PermissionDenied("Only the use case's business owner or its team's owners may change its targets.")
    form = form_class(request.POST)
    if form.is_valid():
        with service_errors_on(form):
            change = save(use_case, form.cleaned_data)
            messages.success(request, "Saved; the scorecard refreshes in a moment." if change
                             else "Nothing changed: it was already that.")
            kpi = form.cleaned_data.get("kpi")
            return redirect(reverse("scorecards:use_case", args=[pk]) + (f"?kpi={kpi}" if kpi else ""))
    return render(request, "scorecards/use_case.html", _scorecard_context(request, use_case, **{form_name: form}),
                  status=400)


@login_required
@require_POST
def target_set(request, pk: int):
    return _target_edit(request, pk, TargetForm, "target_form", lambda use_case, data: services.kpi_target_set(
        actor=request.user, use_case=use_case, kpi=data["kpi"], value=data["value"], reason=data["reason"]))


@login_required
@require_POST
def target_users_set(request, pk: int):
    return _target_edit(request, pk, TargetUsersForm, "users_form", lambda use_case, data: services.target_users_set(
        actor=request.user, use_case=use_case, target_users=data["target_users"], reason=data["reason"]))


@login_required
@require_POST
def refresh(request, pk: int):
    use_case = use_case_get(actor=request.user, pk=pk)
    services.scorecard_refresh_request(actor=request.user, use_case=use_case)
    messages.success(request, "Refresh queued: reload in a few seconds.")
    return redirect("scorecards:use_case", pk=pk)


def _csv(filename: str, rows) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    for row in rows:
        writer.writerow(["'" + c if isinstance(c, str) and c[:1] in ("=", "+", "-", "@") else c for c in row])
    return response


def _json(data) -> HttpResponse:
    return HttpResponse(json.dumps(data, default=str), content_type="application/json")
