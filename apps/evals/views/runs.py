"""Eval run pages: list, the new-run form with its input-map prefill, detail, progress, cancel, one result, the
results as CSV, and the comparison of two runs."""

from __future__ import annotations

import csv
import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.permissions import Action, can, teams_for
from apps.core.forms import apply_service_errors
from apps.core.htmx import is_fragment_request, render_page_or_fragment
from apps.evals import conf, selectors, services
from apps.evals.forms import RunForm
from apps.evals.models import EvalRun, RunStatus
from apps.evals.summary import compare_runs
from apps.evals.views import PAGE_SIZE
from apps.llm.selectors import chat_model_names
from apps.prompts.selectors import version_choices, version_for


@login_required
@require_GET
def run_list(request):
    status = request.GET.get("status", "")
    runs = selectors.run_list(actor=request.user, status=status if status in RunStatus.values else "")
    page = Paginator(runs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "evals/run_list.html", {"page": page, "status": status, "statuses": RunStatus.choices,
                                                   "may_create": teams_for(request.user, Action.CHANGE).exists()})


def _version_choices(user) -> list[tuple[str, str]]:
    versions = version_choices(actor=user, action=Action.CHANGE)
    return [(str(v.pk), f"{v.prompt.name} v{v.number}") for v in versions]


def _prefill_map(user, version_id: str, dataset) -> dict:
    """The suggested input map for the chosen version and dataset ({} until both are chosen)."""
    if dataset is None or not str(version_id).isdigit():
        return {}
    version = version_for(actor=user, pk=int(version_id), action=Action.CHANGE)
    return selectors.input_map_prefill(version=version, dataset=dataset) if version else {}


@login_required
@require_http_methods(["GET", "POST"])
def run_create(request):
    user = request.user
    if not teams_for(user, Action.CHANGE).exists():
        raise PermissionDenied("Only engineers of a team may start eval runs (they spend money).")
    datasets = list(selectors.dataset_list(actor=user).filter(latest_revision__gt=0))
    evaluators = list(selectors.evaluator_list(actor=user))
    by_pk = {str(d.pk): d for d in datasets}
    version_id, dataset_id = request.GET.get("version", ""), request.GET.get("dataset", "")
    initial = {"version": version_id, "dataset": dataset_id,
               "repetitions": 1, "concurrency": int(conf.get("EVALS_DEFAULT_CONCURRENCY")),
               "input_map": _prefill_map(user, version_id, by_pk.get(dataset_id))}
    data = request.POST.copy() if request.method == "POST" else None
    form = RunForm(data, versions=_version_choices(user), datasets=datasets, evaluators=evaluators,
                   models=chat_model_names(), initial=initial, suggest_url=reverse("evals:run_create"))
    note = ""
    if request.method == "GET" and initial["input_map"]:
        note = "Prefilled from the dataset's fields and the prompt's variables: check it."
    if request.method == "POST" and form.is_valid():
        cleaned = form.cleaned_data
        dataset = by_pk[cleaned["dataset"]]
        chosen = [e for e in evaluators if str(e.pk) in cleaned["evaluators"]]
        given_map, version_id = cleaned["input_map"], cleaned["version"]  # add_error drops them from cleaned
        try:
            run = services.run_create(
                actor=user, dataset=dataset, evaluators=chosen, target_ref={"version_id": int(cleaned["version"])},
                revision=cleaned["revision"], model=cleaned["model"], model_config=form.model_config(),
                repetitions=cleaned["repetitions"], concurrency=cleaned["concurrency"],
                input_map=cleaned["input_map"], name=cleaned["name"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
            suggested = _prefill_map(user, version_id, dataset)
            if "input_map" in form.errors and not given_map and suggested:
                data["input_map"] = json.dumps(suggested, ensure_ascii=False)  # shown for the next attempt
                note = "A suggested map is filled in: check it and start the run again."
        else:
            messages.success(request, f"Run #{run.pk} queued: {run.progress_total} call(s).")
            return redirect("evals:run_detail", pk=run.pk)
    context = {"form": form, "mapping_note": note}
    if is_fragment_request(request) and request.method == "GET":
        return render(request, "evals/run_create.html#mapping", context)
    return render(request, "evals/run_create.html", context, status=422 if form.errors else 200)


def _evaluator_labels(run: EvalRun) -> dict[str, str]:
    return {str(e["id"]): f"{e['name']} v{e['version']}" for e in (run.summary or {}).get("evaluators", [])} or {
        str(d.pk): d.label for d in run.evaluators.all()}


@login_required
@require_GET
def run_detail(request, pk: int):
    run = selectors.run_get(actor=request.user, pk=pk)
    failures = request.GET.get("failures") == "1"
    q = request.GET.get("q", "").strip()
    results = selectors.run_results(run=run, failures=failures, q=q)
    page = Paginator(results, PAGE_SIZE).get_page(request.GET.get("page"))
    labels = _evaluator_labels(run)
    rows = []
    for result in page.object_list:
        reasons = [f"{labels.get(k, k)}: {v.get('reason')}" for k, v in (result.scores or {}).items()
                   if v.get("passed") is False and v.get("reason")]
        rows.append({"r": result, "reasons": reasons})
    baseline = selectors.baseline_for(run) if not run.is_active else None
    query = request.GET.copy()
    query.pop("page", None)
    context = {"run": run, "summary": run.summary or {}, "page": page, "rows": rows, "failures": failures, "q": q,
               "query": query.urlencode(), "baseline": baseline,
               "baseline_delta": (run.pass_rate - baseline.pass_rate)
               if baseline and run.pass_rate is not None and baseline.pass_rate is not None else None,
               "may_cancel": run.is_active and can(request.user, Action.CHANGE, run)}
    return render_page_or_fragment(request, "evals/run_detail.html", context, fragment="results")


@login_required
@require_GET
def run_progress(request, pk: int):
    run = selectors.run_get(actor=request.user, pk=pk)
    response = render(request, "evals/partials/_run_progress.html", {"run": run, "poll": True})
    if request.GET.get("poll") == "1" and not run.is_active and is_fragment_request(request):
        response["HX-Refresh"] = "true"  # the run ended: reload to show the aggregates and the item table
    return response


@login_required
@require_POST
def run_cancel(request, pk: int):
    run = selectors.run_get(actor=request.user, pk=pk, action=Action.CHANGE)
    try:
        services.run_cancel(run=run, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Cancelled run #{run.pk}.")
    return redirect("evals:run_detail", pk=run.pk)


@login_required
@require_GET
def result_detail(request, pk: int, result_id: int):
    run = selectors.run_get(actor=request.user, pk=pk)
    result = selectors.result_get(run=run, pk=result_id)
    labels = _evaluator_labels(run)
    scores = [{"label": labels.get(k, k), **v} for k, v in (result.scores or {}).items()]
    baseline = selectors.baseline_for(run)
    baseline_result = None
    if baseline is not None:
        baseline_result = baseline.results.filter(item_id=result.item_id, repetition=result.repetition).first()
    return render(request, "evals/result_detail.html", {"run": run, "result": result, "scores": scores,
                                                       "baseline": baseline, "baseline_result": baseline_result})


@login_required
@require_GET
def run_results_csv(request, pk: int):
    run = selectors.run_get(actor=request.user, pk=pk)
    labels = _evaluator_labels(run)

    class Echo:
        def write(self, value):
            return value

    writer = csv.writer(Echo())

    def rows():
        yield writer.writerow(["item", "repetition", "status", "passed", "score", "latency_ms", "cost", "output",
                               "expected", "error", *labels.values()])
        for r in selectors.run_results(run=run).iterator(chunk_size=2000):
            yield writer.writerow([r.item.key, r.repetition, r.status, r.passed, r.score, r.latency_ms, r.cost,
                                   r.output, r.item.expected or "", r.error,
                                   *[(r.scores or {}).get(k, {}).get("score") for k in labels]])

    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="eval-run-{run.pk}.csv"'
    return response


@login_required
@require_GET
def compare(request):
    try:
        baseline_id, candidate_id = int(request.GET.get("baseline", "")), int(request.GET.get("candidate", ""))
    except ValueError:
        return render(request, "evals/compare.html", {"error": "Choose two runs: ?baseline=ID&candidate=ID."},
                      status=400)
    baseline = selectors.run_get(actor=request.user, pk=baseline_id)
    candidate = selectors.run_get(actor=request.user, pk=candidate_id)
    try:
        comparison = compare_runs(baseline, candidate)
    except ValidationError as exc:
        return render(request, "evals/compare.html", {"error": " ".join(exc.messages), "baseline": baseline,
                                                      "candidate": candidate}, status=422)
    show = request.GET.get("show", "changed")
    items = comparison.items if show == "all" else [i for i in comparison.items if i.change != "same"]
    return render(request, "evals/compare.html", {"comparison": comparison, "baseline": baseline,
                                                  "candidate": candidate, "items": items[:1000], "show": show,
                                                  "total_items": len(comparison.items)})
