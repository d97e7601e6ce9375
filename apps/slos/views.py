"""The SLO pages: every SLO the reader may see (status, budget left, burn rates, open alerts), one use case's SLOs
with their budget charts and alerts, and the SLO form. Thin: parse → selector/service → render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from apps.core import charts
from apps.core.forms import service_errors_on
from apps.core.htmx import render_page_or_fragment
from apps.reviews import selectors as reviews_selectors
from apps.slos import selectors, services
from apps.slos.forms import SloForm
from apps.slos.models import Health
from apps.slos.policy import PAIRS


def _rows(slos) -> list[dict]:
    """Each SLO with what its row shows: the budget bar's width and level, the burn rate of each alert window."""
    rows = []
    for slo in slos:
        left = slo.budget_remaining
        burns = slo.burn_rates or {}
        rows.append({"slo": slo, "left": None if left is None else left * 100,
                     "bar": None if left is None else max(0.0, min(100.0, left * 100)),
                     "level": "" if left is None or left > 0.5 else ("warn" if left > 0.2 else "bad"),
                     "burns": [(pair, burns.get(pair.long, 0), burns.get(pair.short, 0)) for pair in PAIRS]})
    return rows


@login_required
@require_GET
def slo_overview(request):
    health = request.GET.get("health", "")
    health = health if health in Health.values else ""
    page = Paginator(selectors.slo_list(actor=request.user, health=health, active_only=True), 100) \
        .get_page(request.GET.get("page"))
    context = {"rows": _rows(page.object_list), "page": page, "health": health, "healths": Health.choices,
               "alerts": selectors.open_alerts(actor=request.user)}
    return render_page_or_fragment(request, "slos/overview.html", context, "results")


def _chart(slo) -> tuple[str, list]:
    series = selectors.budget_series(slo)
    if not series:
        return "", []
    points = [(at.strftime("%m-%d %H:%M"), round(left * 100, 2), f"{left:.1%} of the budget left")
              for at, left in series]
    figure = charts.category_lines(series={"Budget left (%)": points}, y_title="error budget left (%)",
                                   x_title="UTC")
    return charts.to_html(figure), [(at, left * 100) for at, left in series]


@login_required
@require_GET
def use_case_slos(request, use_case_id: int):
    use_case = reviews_selectors.use_case_get(actor=request.user, pk=use_case_id)
    slos = list(selectors.slo_list(actor=request.user, use_case_id=use_case.pk))
    rows = _rows(slos)
    for row in rows:
        row["chart_html"], row["series"] = _chart(row["slo"])
    context = {"use_case": use_case, "rows": rows, "alerts": selectors.alerts_of(slos),
               "may_define": services.may_define(request.user, use_case)}
    return render(request, "slos/use_case.html", context)


def _form_page(request, *, use_case, form, slo=None, status=200):
    return render(request, "slos/form.html", {"use_case": use_case, "form": form, "slo": slo}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def slo_create(request, use_case_id: int):
    use_case = reviews_selectors.use_case_get(actor=request.user, pk=use_case_id)
    if not services.may_define(request.user, use_case):
        raise PermissionDenied("Engineers and owners of the use case's team define its SLOs.")
    form = SloForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with service_errors_on(form):
            slo = services.slo_create(actor=request.user, use_case=use_case, **form.cleaned_data)
            messages.success(request, f"SLO \"{slo.objective}\" defined.")
            return redirect(slo)
    return _form_page(request, use_case=use_case, form=form, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def slo_edit(request, pk: int):
    slo = selectors.slo_get(actor=request.user, pk=pk)
    if not services.may_define(request.user, slo.use_case):
        raise PermissionDenied("Engineers and owners of the use case's team change its SLOs.")
    initial = {name: getattr(slo, name) for name in services.FIELDS}
    form = SloForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        with service_errors_on(form):
            slo = services.slo_update(actor=request.user, slo=slo, **form.cleaned_data)
            messages.success(request, f"SLO \"{slo.objective}\" saved.")
            return redirect(slo)
    return _form_page(request, use_case=slo.use_case, form=form, slo=slo, status=400 if form.errors else 200)
