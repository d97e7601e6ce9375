"""The experiment pages: the list, a new experiment, and the experiment (arms compared; start, pause, kill,
stop, promote the winner). Thin: parse → selector/service → render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.forms import apply_service_errors
from apps.experiments import selectors, services
from apps.experiments.forms import ExperimentForm, PromoteForm, ReasonForm
from apps.experiments.models import Status


@login_required
@require_GET
def experiment_list(request):
    status = request.GET.get("status", "")
    rows = selectors.experiment_list(actor=request.user, status=status if status in Status.values else "")
    return render(request, "experiments/list.html", {
        "experiments": rows[:200], "status": status, "statuses": Status.choices,
        "may_create": selectors.prompt_choices(actor=request.user).exists()})


@login_required
@require_http_methods(["GET", "POST"])
def experiment_new(request):
    prompts = selectors.prompt_choices(actor=request.user)
    if request.method == "GET" and not prompts.exists():
        raise PermissionDenied("Engineers and owners of a team with prompts create experiments.")
    form = ExperimentForm(request.POST or None, prompts=prompts, initial={"prompt": request.GET.get("prompt", "")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            experiment = services.experiment_create(
                actor=request.user, prompt=selectors.prompt_for(actor=request.user, name=data["prompt"]),
                name=data["name"], hypothesis=data["hypothesis"], unit=data["unit"],
                control_label=data["control_label"], mde=data["mde"], alpha=data["alpha"],
                min_outcomes=data["min_outcomes"], arms=form.arms())
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Experiment “{experiment.name}” created as a draft: start it to split traffic.")
            return redirect(experiment)
    status = 400 if request.method == "POST" else 200
    return render(request, "experiments/new.html", {"form": form}, status=status)


@login_required
@require_GET
def experiment_detail(request, pk: int):
    experiment = selectors.experiment_get(actor=request.user, pk=pk)
    arms = selectors.arms_of(experiment)
    result = selectors.ended_result(experiment) if experiment.status != Status.DRAFT else None
    return render(request, "experiments/detail.html", {
        "experiment": experiment, "arms": arms, "result": result,
        "may_change": selectors.may_change(request.user, experiment),
        "candidates": [a for a in arms if not a.is_control and not a.model]})


ACTIONS = {"start": services.experiment_start, "pause": services.experiment_pause}
DONE = {"start": "Started: the prompt's traffic is split between the arms.",
        "pause": "Paused: every request is on the control until you start it again."}


@login_required
@require_POST
def experiment_action(request, pk: int, action: str):
    experiment = selectors.experiment_get(actor=request.user, pk=pk)
    try:
        if action in ACTIONS:
            ACTIONS[action](experiment=experiment, actor=request.user)
            messages.success(request, DONE[action])
        elif action in ("kill", "stop"):
            form = ReasonForm(request.POST)
            reason = form.cleaned_data["reason"] if form.is_valid() else ""
            if action == "kill":
                services.experiment_kill(experiment=experiment, actor=request.user, reason=reason)
                messages.success(request, "Killed: every request is back on the control.")
            else:
                services.experiment_stop(experiment=experiment, actor=request.user, reason=reason)
                messages.success(request, "Stopped: every request is back on the control; the result is kept.")
        elif action == "acknowledge-srm":
            form = ReasonForm(request.POST)
            services.experiment_srm_acknowledge(experiment=experiment, actor=request.user,
                                                note=form.cleaned_data["reason"] if form.is_valid() else "")
            messages.success(request, "Sample ratio mismatch acknowledged: the comparison names a winner again.")
        elif action == "promote":
            form = PromoteForm(request.POST)
            if not form.is_valid():
                raise ValidationError({"arm": "Choose the arm to promote."})
            promotion = services.experiment_promote(experiment=experiment, actor=request.user,
                                                    arm_key=form.cleaned_data["arm"],
                                                    reason=form.cleaned_data["reason"])
            messages.success(request, f"Promotion request #{promotion.pk} opened; the approvers are told.")
        else:
            raise Http404("No such action.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect(experiment)
