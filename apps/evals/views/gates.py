"""Eval gate pages: the list with each gate's verdict on production, a prompt's gate (set it, see the verdicts
of recent versions), and starting a gate's runs for a version."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.permissions import Action, can
from apps.core.forms import apply_service_errors
from apps.evals import selectors
from apps.evals.forms import GateForm
from apps.evals.gates import gate_evaluate, gate_runs_ensure, gate_set, production_version
from apps.evals.models import EvalGateChange
from apps.llm.selectors import chat_model_names
from apps.prompts import selectors as prompt_selectors


@login_required
@require_GET
def gate_list(request):
    rows = []
    for gate in selectors.gate_list(actor=request.user)[:200]:
        production = production_version(gate.prompt)
        verdict = gate_evaluate(gate, production) if production else None
        rows.append({"gate": gate, "production": production, "verdict": verdict})
    return render(request, "evals/gate_list.html", {"rows": rows})


@login_required
@require_http_methods(["GET", "POST"])
def gate_detail(request, name: str):
    prompt = prompt_selectors.prompt_get(actor=request.user, name=name)
    gate = selectors.gate_for(prompt)
    may_change = can(request.user, Action.CHANGE, prompt)
    datasets = [d for d in selectors.dataset_list(actor=request.user).filter(latest_revision__gt=0)
                if d.team_id in (None, prompt.team_id) or d.shared]
    evaluators = list(selectors.evaluator_list(actor=request.user, team_id=prompt.team_id))
    initial = {}
    if gate is not None:
        initial = {"datasets": [str(d["dataset"]) for d in gate.datasets],
                   "input_map": next((d.get("input_map") for d in gate.datasets if d.get("input_map")), {}),
                   "evaluators": [str(pk) for pk in gate.evaluators.values_list("pk", flat=True)],
                   "thresholds": gate.thresholds, "min_pass_rate": gate.min_pass_rate,
                   "max_regression": gate.max_regression, "model": gate.model, "repetitions": gate.repetitions}
    form = GateForm(request.POST or None, datasets=datasets, evaluators=evaluators, models=chat_model_names(),
                    initial=initial)
    if request.method == "POST":
        if not may_change:
            raise PermissionDenied("Only engineers of the prompt's team may set its gate.")
        if form.is_valid():
            data = form.cleaned_data
            chosen = [d for d in datasets if str(d.pk) in data["datasets"]]
            pinned = {d["dataset"]: d["revision"] for d in (gate.datasets if gate else [])}
            try:
                gate = gate_set(
                    prompt=prompt, actor=request.user,
                    datasets=[{"dataset": d, "revision": pinned.get(d.pk) if request.POST.get("keep_revisions")
                               else d.latest_revision, "input_map": data["input_map"]} for d in chosen],
                    evaluators=[e for e in evaluators if str(e.pk) in data["evaluators"]],
                    thresholds=data["thresholds"], min_pass_rate=data["min_pass_rate"],
                    max_regression=data["max_regression"], model=data["model"], repetitions=data["repetitions"],
                    reason=data["reason"])
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                messages.success(request, f"Saved gate version {gate.version}.")
                return redirect("evals:gate_detail", name=prompt.name)
    versions = list(prompt_selectors.version_list(prompt=prompt)[:5])
    production = production_version(prompt)
    verdicts = [{"version": v, "verdict": gate_evaluate(gate, v), "production": production and v.pk == production.pk}
                for v in versions] if gate else []
    return render(request, "evals/gate_detail.html", {
        "prompt": prompt, "gate": gate, "form": form, "may_change": may_change, "verdicts": verdicts,
        "history": list(EvalGateChange.objects.filter(gate=gate).order_by("-version")) if gate else [],
        "evaluators": {str(e.pk): e for e in evaluators},
    }, status=422 if form.errors else 200)


@login_required
@require_POST
def gate_run(request, name: str):
    prompt = prompt_selectors.prompt_get(actor=request.user, name=name, action=Action.CHANGE)
    gate = selectors.gate_for(prompt)
    if gate is None:
        raise Http404("This prompt has no gate.")
    number = request.POST.get("version", "")
    version = prompt_selectors.version_get(prompt=prompt, number=int(number)) if number.isdigit() else None
    if version is None:
        raise Http404("Choose a version.")
    try:
        runs = gate_runs_ensure(gate=gate, version=version, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("evals:gate_detail", name=prompt.name)
    messages.success(request, f"Gating run(s) for v{version.number}: {', '.join(f'#{r.pk}' for r in runs)}.")
    return redirect("evals:run_detail", pk=runs[0].pk) if len(runs) == 1 else redirect("evals:gate_detail",
                                                                                         name=prompt.name)
