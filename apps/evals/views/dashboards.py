"""The evals dashboards (and their CSV tables) and the end-user feedback list."""

from __future__ import annotations

import csv

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.evals import dashboards as charts
from apps.evals import selectors
from apps.evals.views import PAGE_SIZE
from apps.gateway import dashboards as gateway_dashboards


@login_required
@require_GET
def dashboards(request):
    data = charts.dashboard_data(actor=request.user)
    wanted = request.GET.get("csv", "")
    if wanted:
        table = data["tables"].get(wanted)
        if table is None:
            raise Http404("No such chart.")
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="evals-{wanted}.csv"'
        writer = csv.writer(response)
        writer.writerow(table["columns"])
        writer.writerows(table["rows"])
        return response
    return render(request, "evals/dashboards.html", {"data": data, "charts": charts.figures_html(data),
                                                     "gateway": gateway_dashboards.latency_panel_context(
                                                         actor=request.user)})


@login_required
@require_GET
def feedback_list(request):
    page = Paginator(selectors.feedback_list(actor=request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "evals/feedback_list.html", {"page": page,
                                                        "rates": selectors.feedback_rates(actor=request.user)})
