"""Pages of evals. Thin: parse, call a selector or a service, render a page or a fragment."""

from __future__ import annotations

import csv
import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.permissions import Action, can, is_admin, teams_for
from apps.core.forms import apply_service_errors
from apps.core.htmx import is_fragment_request, render_page_or_fragment
from apps.evals import conf, selectors, services
from apps.evals import datasets as dataset_services
from apps.evals.evaluators import get_kind, kinds
from apps.evals.forms import (
    DatasetCreateForm,
    EvaluatorForm,
    EvaluatorVersionForm,
    GateForm,
    ImportForm,
    ItemForm,
    JudgeLabelForm,
    PlaygroundSaveForm,
    RunForm,
)
from apps.evals.models import (
    ACTIVE_STATUSES,
    DatasetRevision,
    EvalGateChange,
    EvalRun,
    JudgeLabel,
    RunStatus,
)

PAGE_SIZE = 50


def _chat_models() -> list[str]:
    from apps.llm.selectors import chat_model_names

    return chat_model_names()


# --- home --------------------------------------------------------------------------------------------------

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


# --- datasets ----------------------------------------------------------------------------------------------

@login_required
@require_GET
def dataset_list(request):
    latest = DatasetRevision.objects.filter(dataset=OuterRef("pk")).order_by("-number").values("item_count")[:1]
    datasets = selectors.dataset_list(actor=request.user).annotate(item_count=Subquery(latest))
    page = Paginator(datasets, PAGE_SIZE).get_page(request.GET.get("page"))
    from apps.evals.seed import ADVERSARIAL_NAME

    return render(request, "evals/dataset_list.html", {
        "page": page, "may_create": teams_for(request.user, Action.CHANGE).exists(),
        "may_seed": is_admin(request.user) and not datasets.filter(name=ADVERSARIAL_NAME).exists(),
    })


@login_required
@require_http_methods(["GET", "POST"])
def dataset_create(request):
    teams = teams_for(request.user, Action.CHANGE).order_by("name")
    if not teams.exists():
        raise PermissionDenied("Only engineers and owners of a team may create datasets.")
    form = DatasetCreateForm(request.POST or None, teams=teams)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            dataset = dataset_services.dataset_create(team=data["team"], name=data["name"],
                                                      description=data["description"],
                                                      input_names=data["input_names"], actor=request.user)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Created {dataset.name}. Add items or import a file.")
            return redirect("evals:dataset_detail", pk=dataset.pk)
    return render(request, "evals/dataset_create.html", {"form": form}, status=422 if form.errors else 200)


def _revision_param(request, dataset) -> int:
    raw = request.GET.get("revision") or ""
    if raw.isdigit() and 1 <= int(raw) <= dataset.latest_revision:
        return int(raw)
    return dataset.latest_revision


@login_required
@require_GET
def dataset_detail(request, pk: int):
    dataset = selectors.dataset_get(actor=request.user, pk=pk)
    revision = _revision_param(request, dataset)
    q, tag = request.GET.get("q", "").strip(), request.GET.get("tag", "").strip()
    items = selectors.dataset_items(dataset=dataset, revision=revision, q=q, tag=tag) if revision else []
    page = Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "dataset": dataset, "revision": revision, "page": page, "q": q, "tag": tag, "query": query.urlencode(),
        "tags": selectors.dataset_tags(dataset=dataset, revision=revision) if revision else [],
        "revisions": list(selectors.dataset_revisions(dataset=dataset)[:50]),
        "may_change": selectors.may_change_dataset(request.user, dataset),
        "import_form": ImportForm(), "runs": list(selectors.run_list(actor=request.user, dataset_id=dataset.pk)[:10]),
        "may_run": teams_for(request.user, Action.CHANGE).exists(),
    }
    return render_page_or_fragment(request, "evals/dataset_detail.html", context, fragment="items")


@login_required
@require_http_methods(["GET", "POST"])
def dataset_import(request, pk: int):
    dataset = selectors.dataset_get(actor=request.user, pk=pk, action=Action.CHANGE)
    form = ImportForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        fmt = dataset_services.guess_format(upload.name)
        if fmt is None:
            form.add_error("file", "Upload a .csv or .jsonl file.")
        else:
            try:
                report = dataset_services.dataset_import(
                    dataset=dataset, file=upload, fmt=fmt, mode=form.cleaned_data["mode"],
                    import_valid=form.cleaned_data["import_valid"], actor=request.user,
                    message=form.cleaned_data["message"])
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                if report.written:
                    skipped = f" {report.error_rows} bad row(s) skipped." if report.error_rows else ""
                    messages.success(request, f"Imported {report.valid_rows} item(s) as revision {report.revision}."
                                              f"{skipped}")
                    return redirect(reverse("evals:dataset_detail", args=[dataset.pk]) + f"?revision={report.revision}")
    status = 422 if (form.errors or (report and not report.written)) else 200
    return render(request, "evals/dataset_import.html", {"dataset": dataset, "form": form, "report": report},
                  status=status)


@login_required
@require_GET
def dataset_export(request, pk: int, fmt: str):
    dataset = selectors.dataset_get(actor=request.user, pk=pk)
    revision = _revision_param(request, dataset)
    if not revision:
        raise Http404("The dataset has no items yet.")
    slug = dataset.name.replace("/", "_")
    if fmt == "csv":
        response = StreamingHttpResponse(dataset_services.export_csv(dataset, revision), content_type="text/csv")
    elif fmt == "jsonl":
        response = StreamingHttpResponse(dataset_services.export_jsonl(dataset, revision),
                                         content_type="application/x-ndjson")
    else:
        raise Http404("Export as csv or jsonl.")
    response["Content-Disposition"] = f'attachment; filename="{slug}-r{revision}.{fmt}"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def dataset_item_add(request, pk: int):
    dataset = selectors.dataset_get(actor=request.user, pk=pk, action=Action.CHANGE)
    form = ItemForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            revision = dataset_services.dataset_items_add(dataset=dataset, items=[form.item()], actor=request.user,
                                                          message=form.cleaned_data["message"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Added the item: revision {revision.number}.")
            return redirect("evals:dataset_detail", pk=dataset.pk)
    return render(request, "evals/item_form.html", {"dataset": dataset, "form": form, "editing": None},
                  status=422 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def dataset_item_edit(request, pk: int, key: str):
    dataset = selectors.dataset_get(actor=request.user, pk=pk, action=Action.CHANGE)
    item = selectors.dataset_items(dataset=dataset, revision=dataset.latest_revision).filter(key=key).first()
    if item is None:
        raise Http404("No such item in the latest revision.")
    initial = {"id": item.key, "inputs": item.inputs, "expected": item.expected or "",
               "contexts": "\n\n".join(item.contexts), "tags": ", ".join(item.tags)}
    form = ItemForm(request.POST or None, initial=initial)
    form.fields["id"].disabled = True
    if request.method == "POST":
        if "remove" in request.POST:
            revision = dataset_services.dataset_items_remove(dataset=dataset, keys=[key], actor=request.user)
            messages.success(request, f"Removed {key}: revision {revision.number}.")
            return redirect("evals:dataset_detail", pk=dataset.pk)
        if form.is_valid():
            changes = form.item()
            changes.pop("id")
            try:
                revision = dataset_services.dataset_item_edit(dataset=dataset, key=key, changes=changes,
                                                              actor=request.user,
                                                              message=form.cleaned_data["message"])
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                messages.success(request, f"Saved {key}: revision {revision.number}.")
                return redirect("evals:dataset_detail", pk=dataset.pk)
    return render(request, "evals/item_form.html", {"dataset": dataset, "form": form, "editing": item},
                  status=422 if form.errors else 200)


@login_required
@require_POST
def seed_adversarial(request):
    if not is_admin(request.user):
        raise PermissionDenied("Only admins seed the portal's shared sets.")
    from apps.evals.seed import adversarial_seed

    dataset = adversarial_seed(actor=request.user)
    messages.success(request, f"Seeded {dataset.name} and the shared safety evaluators.")
    return redirect("evals:dataset_detail", pk=dataset.pk)


# --- evaluators --------------------------------------------------------------------------------------------

@login_required
@require_GET
def evaluator_list(request):
    return render(request, "evals/evaluator_list.html", {
        "evaluators": list(selectors.evaluator_list(actor=request.user)),
        "kinds": kinds(), "may_create": teams_for(request.user, Action.CHANGE).exists() or is_admin(request.user),
    })


def _may_change_evaluator(user, definition) -> bool:
    return is_admin(user) if definition.team_id is None else can(user, Action.CHANGE, definition)


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
    definition = selectors.evaluator_get(actor=request.user, pk=pk)
    if not _may_change_evaluator(request.user, definition):
        raise PermissionDenied("Only engineers of the owning team may label samples for this judge.")
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
    definition = selectors.evaluator_get(actor=request.user, pk=pk)
    if not _may_change_evaluator(request.user, definition):
        raise PermissionDenied("Only engineers of the owning team may calibrate this judge.")
    from apps.evals.tasks import judge_calibrate_task

    judge_calibrate_task.delay(definition.pk)
    messages.success(request, "Calibration queued: the judge scores each labelled sample; reload in a moment.")
    return redirect("evals:evaluator_detail", pk=definition.pk)


# --- runs --------------------------------------------------------------------------------------------------

@login_required
@require_GET
def run_list(request):
    status = request.GET.get("status", "")
    runs = selectors.run_list(actor=request.user, status=status if status in RunStatus.values else "")
    page = Paginator(runs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "evals/run_list.html", {"page": page, "status": status, "statuses": RunStatus.choices,
                                                   "may_create": teams_for(request.user, Action.CHANGE).exists()})


def _version_choices(user) -> list[tuple[str, str]]:
    from apps.prompts.selectors import version_choices

    versions = version_choices(actor=user, action=Action.CHANGE)
    return [(str(v.pk), f"{v.prompt.name} v{v.number}") for v in versions]


def _prefill_map(user, version_id: str, dataset) -> dict:
    """The suggested input map for the chosen version and dataset ({} until both are chosen)."""
    from apps.prompts.selectors import version_for

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
                   models=_chat_models(), initial=initial, suggest_url=reverse("evals:run_create"))
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
    from apps.evals.summary import compare_runs

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


# --- gates -------------------------------------------------------------------------------------------------

@login_required
@require_GET
def gate_list(request):
    from apps.evals.gates import gate_evaluate, production_version

    rows = []
    for gate in selectors.gate_list(actor=request.user)[:200]:
        production = production_version(gate.prompt)
        verdict = gate_evaluate(gate, production) if production else None
        rows.append({"gate": gate, "production": production, "verdict": verdict})
    return render(request, "evals/gate_list.html", {"rows": rows})


@login_required
@require_http_methods(["GET", "POST"])
def gate_detail(request, name: str):
    from apps.evals.gates import gate_evaluate, gate_set, production_version
    from apps.prompts import selectors as prompt_selectors

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
    form = GateForm(request.POST or None, datasets=datasets, evaluators=evaluators, models=_chat_models(),
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
    from apps.evals.gates import gate_runs_ensure
    from apps.prompts import selectors as prompt_selectors

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


# --- dashboards and feedback ----------------------------------------------------------------------------------

@login_required
@require_GET
def dashboards(request):
    from apps.evals import dashboards as charts

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
    return render(request, "evals/dashboards.html", {"data": data, "charts": charts.figures_html(data)})


@login_required
@require_GET
def feedback_list(request):
    page = Paginator(selectors.feedback_list(actor=request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "evals/feedback_list.html", {"page": page,
                                                        "rates": selectors.feedback_rates(actor=request.user)})


# --- the panel on the prompt page ------------------------------------------------------------------------

def prompt_panel(*, prompt, user, **_):
    """Registered with the prompt catalog: the gate's verdict on the latest and the production version."""
    from django.template.loader import render_to_string

    from apps.evals.gates import gate_evaluate, production_version
    from apps.prompts.selectors import version_list

    gate = selectors.gate_for(prompt)
    rows = []
    if gate is not None:
        production = production_version(prompt)
        latest = version_list(prompt=prompt).first()
        for version in {v.pk: v for v in (latest, production) if v is not None}.values():
            rows.append({"version": version, "verdict": gate_evaluate(gate, version),
                         "production": production is not None and version.pk == production.pk})
    html = render_to_string("evals/partials/_prompt_panel.html", {"gate": gate, "rows": rows, "prompt": prompt})
    return {"title": "Eval gate", "html": html}


# --- from the playground --------------------------------------------------------------------------------------

def playground_action_url(*, run, user):
    """Registered with the prompt catalog's playground: a button on each finished run."""
    if getattr(run, "status", "") != "ok" or not teams_for(user, Action.CHANGE).exists():
        return None
    return reverse("evals:from_playground", args=[run.pk])


@login_required
@require_http_methods(["GET", "POST"])
def from_playground(request, run_id: int):
    from apps.prompts.selectors import playground_run_for

    run = playground_run_for(actor=request.user, pk=run_id)
    if run is None:
        raise Http404("No such playground run.")
    datasets = [d for d in selectors.dataset_list(actor=request.user, action=Action.CHANGE)]
    if not datasets:
        raise PermissionDenied("You may not change any dataset: create one in Evals → Datasets first.")
    form = PlaygroundSaveForm(request.POST or None, datasets=datasets, initial={"expected": run.output})
    if request.method == "POST" and form.is_valid():
        dataset = next(d for d in datasets if str(d.pk) == form.cleaned_data["dataset"])
        tags = [t.strip() for t in form.cleaned_data["tags"].split(",") if t.strip()]
        try:
            revision = dataset_services.dataset_item_from_playground(
                dataset=dataset, run=run, expected=form.cleaned_data["expected"] or None, tags=tags,
                actor=request.user)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Saved to {dataset.name}: revision {revision.number}.")
            return redirect("evals:dataset_detail", pk=dataset.pk)
    return render(request, "evals/from_playground.html", {"run": run, "form": form,
                                                          "inputs": json.dumps(run.inputs, indent=1)},
                  status=422 if form.errors else 200)
