"""Evaluator pages: list, create, detail with new versions, and the LLM judge's labelled samples and calibration."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.permissions import Action, can, is_admin, teams_for
from apps.core.forms import apply_service_errors
from apps.evals import queue, selectors, services
from apps.evals.evaluators import get_kind, kinds
from apps.evals.forms import EvaluatorForm, EvaluatorVersionForm, JudgeLabelForm
from apps.evals.models import JudgeLabel


@login_required
@require_GET
def evaluator_list(request):
    return render(request, "evals/evaluator_list.html", {
        "evaluators": list(selectors.evaluator_list(actor=request.user)),
        "kinds": kinds(), "may_create": teams_for(request.user, Action.CHANGE).exists() or is_admin(request.user),
    })


def _may_change_evaluator(user, definition) -> bool:
    return is_admin(user) if definition.team_id is None else can(user, Action.CHANGE, definition)


def _evaluator_to_change(request, pk: int, doing: str):
    """The evaluator, when the user sees it (404 otherwise) and may change it (403 otherwise)."""
    definition = selectors.evaluator_get(actor=request.user, pk=pk)
    if not _may_change_evaluator(request.user, definition):
        raise PermissionDenied(f"Only engineers of the owning team may {doing}.")
    return definition


@login_required
@require_http_methods(["GET", "POST"])
def evaluator_create(request):
    teams = list(teams_for(request.user, Action.CHANGE).order_by("name"))
    admin = is_admin(request.user)
    if not teams and not admin:
        raise PermissionDenied("Only engineers and owners of a team may create evaluators.")
    initial = {"kind": request.GET.get("kind", "")}
    kind = get_kind(initial["kind"]) if initial["kind"] else None
    if kind is not None:
        initial["params"] = kind.example
        initial["threshold"] = kind.default_threshold
    form = EvaluatorForm(request.POST or None, teams=teams, allow_shared=admin, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        team = next((t for t in teams if str(t.pk) == data["team"]), None)
        if team is None and not (admin and data["team"] == ""):
            form.add_error("team", "Choose one of your teams.")
        else:
            try:
                definition = services.evaluator_create(team=team, name=data["name"], kind=data["kind"],
                                                       params=data["params"], threshold=data["threshold"],
                                                       description=data["description"], actor=request.user)
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                messages.success(request, f"Created {definition.label}.")
                return redirect("evals:evaluator_detail", pk=definition.pk)
    return render(request, "evals/evaluator_form.html", {"form": form, "kinds": kinds()},
                  status=422 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def evaluator_detail(request, pk: int):
    definition = selectors.evaluator_get(actor=request.user, pk=pk)
    versions = list(selectors.evaluator_versions(definition))
    latest = versions[0]
    may_change = _may_change_evaluator(request.user, definition)
    form = EvaluatorVersionForm(request.POST or None, initial={"params": latest.params, "threshold": latest.threshold,
                                                              "description": latest.description})
    if request.method == "POST":
        if not may_change:
            raise PermissionDenied("Only engineers of the owning team may change this evaluator.")
        if form.is_valid():
            try:
                new = services.evaluator_revise(definition=latest, actor=request.user, **form.cleaned_data)
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                messages.success(request, f"Saved {new.label}.")
                return redirect("evals:evaluator_detail", pk=new.pk)
    labels = list(JudgeLabel.objects.filter(evaluator=definition).order_by("id")) \
        if definition.kind == "llm_judge" else []
    return render(request, "evals/evaluator_detail.html", {
        "definition": definition, "versions": versions, "latest": latest, "may_change": may_change, "form": form,
        "kind": get_kind(definition.kind), "labels": labels, "label_form": JudgeLabelForm(),
        "calibration": services.calibration_summary(labels) if labels else None,
    }, status=422 if form.errors else 200)


@login_required
@require_POST
def judge_label_add(request, pk: int):
    definition = _evaluator_to_change(request, pk, "label samples for this judge")
    form = JudgeLabelForm(request.POST)
    if form.is_valid():
        try:
            services.judge_label_add(evaluator=definition, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, "Added the labelled sample.")
    else:
        messages.error(request, "Give the output and the human verdict.")
    return redirect("evals:evaluator_detail", pk=definition.pk)


@login_required
@require_POST
def judge_calibrate(request, pk: int):
    definition = _evaluator_to_change(request, pk, "calibrate this judge")
    queue.judge_calibrate_enqueue(definition.pk)
    messages.success(request, "Calibration queued: the judge scores each labelled sample; reload in a moment.")
    return redirect("evals:evaluator_detail", pk=definition.pk)
