"""The evals home page: recent runs, counts and gates."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.accounts.permissions import Action, teams_for
from apps.evals import selectors
from apps.evals.models import ACTIVE_STATUSES


@login_required
@require_GET
def eval_home(request):
    user = request.user
    runs = selectors.run_list(actor=user)
    return render(request, "evals/home.html", {
        "recent_runs": list(runs[:10]),
        "active_runs": runs.filter(status__in=ACTIVE_STATUSES).count(),
        "dataset_count": selectors.dataset_list(actor=user).count(),
        "evaluator_count": selectors.evaluator_list(actor=user).count(),
        "gates": list(selectors.gate_list(actor=user)[:10]),
        "may_create": teams_for(user, Action.CHANGE).exists(),
    })
