"""Cost dashboards, budgets and prices. Thin: parse the request, call a report/selector/service, render.

Every chart is served three ways from one Report: inside the dashboard page, alone as an htmx fragment
(`costs:chart`), and as CSV (`costs:chart_csv`) — the same numbers each time.
"""

from __future__ import annotations

import csv
import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.permissions import Action, is_admin, teams_for
from apps.core.forms import service_errors_on
from apps.core.htmx import htmx_location, is_fragment_request, render_page_or_fragment
from apps.costs import panels, reports, selectors, services
from apps.costs.forms import (
    BudgetForm,
    DashboardFilterForm,
    LiteLLMImportForm,
    PriceCorrectForm,
    PriceForm,
    WhatIfForm,
)
from apps.costs.models import Budget, Price, RepricingJob
from apps.costs.pricing_import import prices_import_litellm

CHARTS = ("spend", "drivers", "tokens", "outcomes", "cache", "gatewaycache", "cacheusecase", "forecast", "whatif")


def _filters(request):
    teams = teams_for(request.user, Action.VIEW).only("pk", "slug", "name").order_by("name")
    form = DashboardFilterForm(request.GET or None, teams=teams)
    form.is_valid()  # errors are shown next to their field; the valid fields still filter
    return form


def _report(request, name: str, form: DashboardFilterForm):
    filters = form.filters()
    if name == "spend":
        return reports.spend_over_time(actor=request.user, filters=filters, group_by=form.stack_by)
    if name == "whatif":
        whatif = WhatIfForm(request.GET or None, models=_priced_models(request))
        whatif.is_valid()
        data = getattr(whatif, "cleaned_data", {})
        return reports.what_if(actor=request.user, filters=filters, feature=data.get("whatif_feature", ""),
                               target_model=data.get("whatif_model", ""))
    if name not in reports.REPORTS:
        raise Http404("No such chart.")
    return reports.REPORTS[name](actor=request.user, filters=filters)


def _priced_models(request) -> list[str]:
    if not hasattr(request, "_costs_priced_models"):
        request._costs_priced_models = reports.priced_models()
    return request._costs_priced_models


def _query(request, drop=()) -> str:
    query = request.GET.copy()
    for key in drop:
        query.pop(key, None)
    return query.urlencode()


@login_required
@require_GET
def dashboard(request):
    """All charts (full page), or only the charts region (htmx, after a filter change)."""
    form = _filters(request)
    context = {
        "form": form, "filters": form.filters(), "query": _query(request),
        "reports": [_report(request, name, form) for name in CHARTS],
        "whatif_form": WhatIfForm(request.GET or None, models=_priced_models(request)),
        "glance": selectors.glance(actor=request.user),
        "dims": selectors.dimension_values(actor=request.user),
        "panels": panels.dashboard_panels(actor=request.user, filters=form.filters(), params=request.GET),
    }
    return render_page_or_fragment(request, "costs/dashboard.html", context, fragment="charts")


@login_required
@require_GET
def glance(request):
    """Unpriced events, anomalies and budget status: the card row for the PM home (loaded by htmx)."""
    return render(request, "costs/partials/_glance.html", {"glance": selectors.glance(actor=request.user)})


def _chart_filters(request, name: str):
    """The filter form of a chart's fragment or CSV; 404 for a chart that does not exist."""
    if name not in CHARTS:
        raise Http404("No such chart.")
    return _filters(request)


@login_required
@require_GET
def chart(request, name: str):
    """One chart with its table: the fragment htmx swaps in (also what the dashboard bench times)."""
    form = _chart_filters(request, name)
    report = _report(request, name, form)
    return render(request, "costs/partials/_report.html", {"report": report, "query": _query(request),
                                                            "whatif_form": WhatIfForm(request.GET or None,
                                                                                      models=_priced_models(request))})


def _csv_cell(value, kind: str):
    if value is None:
        return ""
    if kind == "money":
        return f"{value:.6f}"
    if kind in ("pct", "float"):
        return f"{value:.2f}"
    if kind == "int":
        return str(int(round(value)))
    return str(value)


@login_required
@require_GET
def chart_csv(request, name: str):
    """The chart's table as CSV: the same rows the page shows."""
    form = _chart_filters(request, name)
    if form.errors:
        return HttpResponse("These filters are not valid: " + "; ".join(form.error_summary()), status=400,
                            content_type="text/plain; charset=utf-8")
    report = _report(request, name, form)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    f = form.filters()
    response["Content-Disposition"] = (f'attachment; filename="costs-{name}-{f.start:%Y%m%d}-'
                                       f'{f.end:%Y%m%d}.csv"')
    response["Cache-Control"] = "no-store"
    writer = csv.writer(response)
    writer.writerow([c.label for c in report.columns])
    for row in report.rows:
        writer.writerow([_csv_cell(row.get(c.key), c.kind) for c in report.columns])
    return response


# --- budgets -------------------------------------------------------------------------------------------------


def _budget_form(request, *, data=None, instance=None):
    manageable = teams_for(request.user, Action.MANAGE).order_by("name")
    return BudgetForm(data, instance=instance, teams=manageable, allow_all_teams=is_admin(request.user))


@login_required
@require_http_methods(["GET", "POST"])
def budget_list(request):
    form = None
    can_create = is_admin(request.user) or teams_for(request.user, Action.MANAGE).exists()
    if request.method == "POST":
        if not can_create:
            raise PermissionDenied("Only team owners and admins may set budgets.")
        form = _budget_form(request, data=request.POST)
        if form.is_valid():
            with service_errors_on(form):
                budget = services.budget_create(actor=request.user, **form.cleaned_data)
                messages.success(request, f"Budget '{budget.name}' created.")
                return redirect("costs:budget_list")
    elif can_create:
        form = _budget_form(request)
    manageable = set(teams_for(request.user, Action.MANAGE).values_list("pk", flat=True))
    statuses = selectors.budget_statuses(actor=request.user)
    for status in statuses:
        team_id = status.budget.team_id
        status.can_edit = is_admin(request.user) or (team_id is not None and team_id in manageable)
    return render(request, "costs/budgets.html", {"statuses": statuses, "form": form,
                                                  "status": 400 if form is not None and form.errors else 200},
                  status=400 if form is not None and form.errors else 200)


def _budget_for_change(request, pk: int) -> Budget:
    visible = selectors.budget_list(actor=request.user)
    budget = get_object_or_404(visible, pk=pk)
    allowed = is_admin(request.user) or (budget.team_id is not None and teams_for(request.user, Action.MANAGE)
                                         .filter(pk=budget.team_id).exists())
    if not allowed:
        raise PermissionDenied("Only owners of this team (or admins) may change its budgets.")
    return budget


@login_required
@require_http_methods(["GET", "POST"])
def budget_edit(request, pk: int):
    budget = _budget_for_change(request, pk)
    form = _budget_form(request, data=request.POST if request.method == "POST" else None, instance=budget)
    if request.method == "POST" and form.is_valid():
        with service_errors_on(form):
            services.budget_update(budget=budget, actor=request.user, **form.cleaned_data)
            messages.success(request, f"Budget '{budget.name}' saved.")
            return redirect("costs:budget_list")
    status = 400 if form.errors else 200
    return render(request, "costs/budget_form.html", {"form": form, "budget": budget}, status=status)


@login_required
@require_POST
def budget_delete(request, pk: int):
    budget = _budget_for_change(request, pk)
    services.budget_delete(budget=budget, actor=request.user)
    messages.success(request, f"Budget '{budget.name}' deleted.")
    if is_fragment_request(request):
        return htmx_location(reverse("costs:budget_list"))
    return redirect("costs:budget_list")


# --- prices --------------------------------------------------------------------------------------------------


def _require_admin(request) -> None:
    if not is_admin(request.user):
        raise PermissionDenied("Only portal admins may change prices.")


def _prices_context(request, **extra) -> dict:
    spend = selectors.spend_summary(actor=request.user)
    unpriced = sorted(spend.unpriced_models, key=lambda m: -m["n"])[:20]
    admin = is_admin(request.user)
    return {"prices": Price.objects.filter(valid_to__isnull=True).order_by("model_name", "provider"),
            "history": Price.objects.filter(valid_to__isnull=False).order_by("-valid_to")[:30],
            "unpriced": unpriced, "spend": spend, "is_admin": admin, "jobs": selectors.repricing_jobs(),
            "form": extra.pop("form", PriceForm() if admin else None),
            "import_form": extra.pop("import_form", LiteLLMImportForm() if admin else None), **extra}


@login_required
@require_http_methods(["GET", "POST"])
def price_list(request):
    if request.method == "GET":
        return render(request, "costs/prices.html", _prices_context(request))
    _require_admin(request)
    form = PriceForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        with service_errors_on(form):
            price, job = services.price_add(
                model_name=data["model_name"].strip(), provider=data["provider"].strip(),
                input_per_mtok=data["input_per_mtok"], output_per_mtok=data["output_per_mtok"],
                cached_input_per_mtok=data["cached_input_per_mtok"], reasoning_per_mtok=data["reasoning_per_mtok"],
                valid_from=data["valid_from"], user=request.user)
            note = f" Re-pricing the events since {price.valid_from:%Y-%m-%d} (job #{job.pk})." if job else ""
            messages.success(request, f"Price for {price.model_name} saved.{note}")
            return redirect("costs:price_list")
    return render(request, "costs/prices.html", _prices_context(request, form=form), status=400)


@login_required
@require_http_methods(["GET", "POST"])
def price_correct(request, pk: int):
    _require_admin(request)
    price = get_object_or_404(Price, pk=pk)
    initial = {k: getattr(price, k) for k in ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok",
                                              "reasoning_per_mtok")}
    form = PriceCorrectForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        with service_errors_on(form):
            _, job = services.price_correct(price=price, user=request.user, **form.cleaned_data)
            note = f" Re-pricing its events (job #{job.pk})." if job else ""
            messages.success(request, f"Price of {price.model_name} corrected.{note}")
            return redirect("costs:price_list")
    return render(request, "costs/price_correct.html", {"form": form, "price": price},
                  status=400 if form.errors else 200)


@login_required
@require_POST
def price_import(request):
    _require_admin(request)
    form = LiteLLMImportForm(request.POST, request.FILES)
    report = None
    if form.is_valid():
        try:
            data = json.loads(form.cleaned_data["file"].read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            form.add_error("file", f"This is not a JSON file: {exc}")
        else:
            only = {m.strip() for m in form.cleaned_data["only"].split(",") if m.strip()} or None
            report = prices_import_litellm(data, user=request.user, only=only, skip_bad=form.cleaned_data["skip_bad"])
            if report.ok or form.cleaned_data["skip_bad"]:
                messages.success(request, f"LiteLLM import: {len(report.created)} new prices, "
                                          f"{len(report.unchanged)} unchanged, {len(report.skipped)} skipped"
                                          f"{f', {len(report.errors)} with errors' if report.errors else ''}.")
                if not report.errors:
                    return redirect("costs:price_list")
    status = 400 if form.errors or (report and report.errors) else 200
    return render(request, "costs/prices.html", _prices_context(request, import_form=form, import_report=report),
                  status=status)


@login_required
@require_GET
def repricing_job(request, pk: int):
    """A job's progress row (polled by htmx while it runs)."""
    job = get_object_or_404(RepricingJob, pk=pk)
    return render(request, "costs/partials/_job.html", {"job": job})


