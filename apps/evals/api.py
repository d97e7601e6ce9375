"""REST API of evals (/api/v1/evals) and the online feedback endpoint (/api/v1/feedback, `feedback_router`).

Same services and selectors as the pages; tokens act within their team (write scope: create datasets, runs,
run the gate; ingest scope: send feedback).
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, StreamingHttpResponse
from django.urls import reverse
from ninja import Field, Query, Router, Schema, Status

from apps.accounts.models import ApiToken, Team
from apps.accounts.permissions import Action, can
from apps.accounts.selectors import team_for_api
from apps.core.api_errors import ApiProblem, errors
from apps.costs.selectors import request_team
from apps.evals import datasets as dataset_services
from apps.evals import selectors, services
from apps.evals.gates import gate_evaluate, gate_runs_ensure
from apps.evals.models import Dataset, EvalRun
from apps.evals.summary import compare_runs
from apps.prompts import selectors as prompt_selectors

router = Router(tags=["evals"])
feedback_router = Router(tags=["feedback"])


def _actor(request):
    return request.auth


# --- schemas ---------------------------------------------------------------------------------------------

class DatasetIn(Schema):
    team: str = Field(..., description="Slug of the owning team")
    name: str = Field(..., examples=["support/faq-golden"])
    description: str = ""
    input_names: list[str] = Field(default_factory=list, description="Variables every item must give")


class DatasetOut(Schema):
    id: int
    name: str
    team: str | None
    shared: bool
    description: str
    input_names: list[str]
    latest_revision: int
    updated_at: datetime


class ItemIn(Schema):
    id: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    expected: str | None = None
    contexts: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class ItemsIn(Schema):
    items: list[ItemIn]
    message: str = ""


class RevisionOut(Schema):
    dataset: int
    revision: int
    items: int
    added: int
    removed: int


class RunIn(Schema):
    prompt: str = Field(..., description="Prompt name")
    version: int
    dataset: int = Field(..., description="Dataset id")
    revision: int | None = Field(None, description="Empty: the latest revision")
    evaluators: list[int] = Field(..., description="Evaluator definition ids (pinned versions)")
    model: str = ""
    model_config_: dict[str, Any] = Field(default_factory=dict, alias="model_config")
    repetitions: int = 1
    concurrency: int | None = None
    input_map: dict[str, str] = Field(default_factory=dict)
    name: str = ""


class RunOut(Schema):
    id: int
    status: str
    target: str
    dataset: str
    revision: int
    model: str
    repetitions: int
    progress_done: int
    progress_total: int
    errors: int
    spend: str
    pass_rate: float | None
    mean_score: float | None
    created_at: datetime
    finished_at: datetime | None
    summary: dict[str, Any]
    url: str


class GateIn(Schema):
    prompt: str
    version: int


class FeedbackIn(Schema):
    request_id: str = Field("", description="The request id of the call (the usage ledger's idempotency key)")
    trace_id: str = ""
    score: float | None = Field(None, description="0 (bad) to 1 (good)")
    thumbs: str = Field("", description="up or down")
    comment: str = ""
    correction: str = Field("", description="What the answer should have been")
    inputs: dict[str, Any] | None = Field(None, description="The call's input variables (to add it to a dataset)")
    output: str = ""
    dataset: int | None = Field(None, description="Add the trace to this dataset of your team")
    team: str = Field("", description="Team slug (session callers; tokens act for their team)")
    prompt_name: str = Field("", description="When the call is not on the usage ledger: the prompt it used")
    prompt_version: int | None = None
    use_case_id: int | None = None
    groundedness: float | None = Field(None, description="Your own groundedness score of the answer, 0 (nothing "
                                                         "supported) to 1 (every sentence supported); may come alone")


class FeedbackOut(Schema):
    id: int
    request_id: str
    success: bool | None
    groundedness: float | None = None
    overridden: bool
    prompt_name: str
    prompt_version: int | None
    dataset_item: str | None


def _dataset_out(d) -> DatasetOut:
    return DatasetOut(id=d.pk, name=d.name, team=d.team.slug if d.team_id else None, shared=d.shared,
                      description=d.description, input_names=list(d.input_names), latest_revision=d.latest_revision,
                      updated_at=d.updated_at)


def _run_out(run: EvalRun) -> RunOut:
    return RunOut(id=run.pk, status=run.status, target=run.target_label, dataset=run.dataset.name,
                  revision=run.dataset_revision, model=run.model, repetitions=run.repetitions,
                  progress_done=run.progress_done, progress_total=run.progress_total, errors=run.errors_count,
                  spend=str(run.spend), pass_rate=run.pass_rate, mean_score=run.mean_score,
                  created_at=run.created_at, finished_at=run.finished_at, summary=run.summary or {},
                  url=reverse("evals:run_detail", args=[run.pk]))


# --- datasets ----------------------------------------------------------------------------------------------

@router.get("/datasets", response=list[DatasetOut], summary="Datasets you may see (yours and shared ones)")
def dataset_list(request, limit: int = 100, offset: int = Query(0, ge=0, le=1_000_000_000)):
    qs = selectors.dataset_list(actor=_actor(request))
    return [_dataset_out(d) for d in qs[max(0, offset):max(0, offset) + min(max(1, limit), 500)]]


@router.post("/datasets", response={201: DatasetOut, **errors(403, 404, 422)}, summary="Create a dataset")
def dataset_create(request, body: DatasetIn):
    actor = _actor(request)
    team = team_for_api(actor=actor, slug=body.team, action=Action.CHANGE)
    dataset = dataset_services.dataset_create(team=team, name=body.name, description=body.description,
                                              input_names=body.input_names, actor=actor)
    return Status(201, _dataset_out(dataset))


@router.get("/datasets/{int:pk}", response={200: DatasetOut, **errors(404)})
def dataset_detail(request, pk: int):
    return _dataset_out(selectors.dataset_get(actor=_actor(request), pk=pk))


@router.post("/datasets/{int:pk}/items", response={201: RevisionOut, **errors(403, 404, 422)}, summary="Add items: a new revision")
def dataset_items_add(request, pk: int, body: ItemsIn):
    actor = _actor(request)
    dataset = selectors.dataset_get(actor=actor, pk=pk, action=Action.CHANGE)
    revision = dataset_services.dataset_items_add(dataset=dataset, items=[i.dict() for i in body.items], actor=actor,
                                                  message=body.message)
    return Status(201, RevisionOut(dataset=dataset.pk, revision=revision.number, items=revision.item_count,
                                   added=revision.added, removed=revision.removed))


@router.post("/datasets/{int:pk}/import", response={200: dict, **errors(403, 404, 422)},
             summary="Import CSV or JSONL (multipart `file`, or the raw body): every row is validated first; "
                     "nothing is written unless all pass, or import_valid=true",
             openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}},
                                                        "application/x-ndjson": {"schema": {"type": "string"}}}}})
def dataset_import(request, pk: int, format: str = "", mode: str = "append", import_valid: bool = False,
                   message: str = ""):
    actor = _actor(request)
    dataset = selectors.dataset_get(actor=actor, pk=pk, action=Action.CHANGE)
    upload = request.FILES.get("file")
    fmt = format or (dataset_services.guess_format(upload.name) if upload else "")
    if not fmt:
        content_type = request.headers.get("Content-Type", "")
        fmt = "csv" if "csv" in content_type else "jsonl" if "json" in content_type else ""
    file = upload if upload is not None else io.BytesIO(request.body)
    report = dataset_services.dataset_import(dataset=dataset, file=file, fmt=fmt, mode=mode,
                                             import_valid=import_valid, actor=actor, message=message)
    if not report.written:
        raise ApiProblem(422, report.fatal or f"Nothing was imported: {report.error_rows} row(s) have errors.",
                                      [e.as_dict() for e in report.errors], report=report.as_dict())
    return Status(200, report.as_dict())


@router.get("/datasets/{int:pk}/export", response={200: None, **errors(404)}, summary="Export a revision as CSV or JSONL (streamed)",
            openapi_extra={"responses": {200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}}})
def dataset_export(request, pk: int, format: str = "jsonl", revision: int | None = None):
    dataset = selectors.dataset_get(actor=_actor(request), pk=pk)
    revision = revision or dataset.latest_revision
    if not 1 <= revision <= dataset.latest_revision:
        raise Http404("No such revision.")
    if format == "csv":
        return StreamingHttpResponse(dataset_services.export_csv(dataset, revision), content_type="text/csv")
    if format == "jsonl":
        return StreamingHttpResponse(dataset_services.export_jsonl(dataset, revision),
                                     content_type="application/x-ndjson")
    raise Http404("Export as csv or jsonl.")


# --- evaluators --------------------------------------------------------------------------------------------

@router.get("/evaluators", response=list[dict], summary="Evaluators (latest versions) you may use")
def evaluator_list(request):
    return [{"id": e.pk, "name": e.name, "version": e.version, "kind": e.kind, "params": e.params,
             "threshold": e.threshold, "team": e.team.slug if e.team_id else None}
            for e in selectors.evaluator_list(actor=_actor(request))]


# --- runs ---------------------------------------------------------------------------------------------------

@router.post("/runs", response={201: RunOut, **errors(403, 404, 422)}, summary="Start an eval run (queued on the llm queue)")
def run_create(request, body: RunIn):
    actor = _actor(request)
    prompt = prompt_selectors.prompt_get(actor=actor, name=body.prompt, action=Action.CHANGE)
    version = prompt_selectors.version_get(prompt=prompt, number=body.version)
    dataset = selectors.dataset_get(actor=actor, pk=body.dataset)
    evaluators = list(selectors.evaluator_list(actor=actor, latest_only=False).filter(pk__in=body.evaluators))
    if len(evaluators) != len(set(body.evaluators)):
        raise Http404("Some evaluators do not exist or are not visible to you.")
    run = services.run_create(actor=actor, dataset=dataset, evaluators=evaluators,
                              target_ref={"version_id": version.pk}, revision=body.revision, model=body.model,
                              model_config=body.model_config_, repetitions=body.repetitions,
                              concurrency=body.concurrency, input_map=body.input_map, name=body.name)
    return Status(201, _run_out(EvalRun.objects.select_related("dataset").get(pk=run.pk)))


@router.get("/runs/{int:pk}", response={200: RunOut, **errors(404)}, summary="A run: status, live progress, and aggregates when done")
def run_detail(request, pk: int):
    return _run_out(selectors.run_get(actor=_actor(request), pk=pk))


@router.post("/runs/{int:pk}/cancel", response={200: RunOut, **errors(403, 404, 422)})
def run_cancel(request, pk: int):
    actor = _actor(request)
    run = selectors.run_get(actor=actor, pk=pk, action=Action.CHANGE)
    services.run_cancel(run=run, actor=actor)
    return _run_out(selectors.run_get(actor=actor, pk=pk))


@router.get("/runs/{int:pk}/results", response={200: list[dict], **errors(404)},
            summary="Item results (filter failures=true)")
def run_results(request, pk: int, failures: bool = False, limit: int = 100,
                offset: int = Query(0, ge=0, le=1_000_000_000)):
    run = selectors.run_get(actor=_actor(request), pk=pk)
    rows = selectors.run_results(run=run, failures=failures)[max(0, offset):max(0, offset) + min(max(1, limit), 1000)]
    return [{"id": r.pk, "item": r.item.key, "repetition": r.repetition, "status": r.status, "passed": r.passed,
             "score": r.score, "output": r.output, "expected": r.item.expected, "error": r.error,
             "latency_ms": r.latency_ms, "cost": None if r.cost is None else str(r.cost), "scores": r.scores}
            for r in rows]


@router.get("/compare", response={200: dict, **errors(404, 422)}, summary="Compare two runs on the same dataset revision")
def compare(request, baseline: int, candidate: int):
    actor = _actor(request)
    comparison = compare_runs(selectors.run_get(actor=actor, pk=baseline), selectors.run_get(actor=actor, pk=candidate))
    return {"baseline": baseline, "candidate": candidate, "regressions": comparison.regressions,
            "improvements": comparison.improvements, "paired_bootstrap": comparison.bootstrap,
            "mcnemar": comparison.mcnemar, "significant": comparison.significant, "verdict": comparison.verdict(),
            "evaluators": comparison.evaluators,
            "items": [{"item": i.key, "change": i.change, "baseline_score": i.baseline_score,
                       "candidate_score": i.candidate_score, "delta": i.delta} for i in comparison.items
                      if i.change != "same"][:1000]}


# --- the gate -----------------------------------------------------------------------------------------------

@router.post("/gate", response={200: dict, 202: dict, **errors(403, 404, 422)},
             summary="Run (or reuse) the gating runs of a prompt version: 200 with passed true/false when decided, "
                     "202 while the runs are running (call again)")
def gate(request, body: GateIn):
    actor = _actor(request)
    prompt = prompt_selectors.prompt_get(actor=actor, name=body.prompt, action=Action.CHANGE)
    version = prompt_selectors.version_get(prompt=prompt, number=body.version)
    gate_obj = selectors.gate_for(prompt)
    if gate_obj is None:
        raise ApiProblem(404, f"{prompt.name} has no eval gate: set one on the Evals → Gates page.")
    runs = gate_runs_ensure(gate=gate_obj, version=version, actor=actor)
    verdict = gate_evaluate(gate_obj, version).as_dict()
    verdict["runs"] = [{"id": r.pk, "status": r.status, "progress_done": r.progress_done,
                        "progress_total": r.progress_total} for r in runs]
    return Status(202 if verdict["status"] in ("running", "missing") else 200, verdict)


# --- feedback ----------------------------------------------------------------------------------------------

@feedback_router.post("/feedback", response={201: FeedbackOut, **errors(403, 404, 422)},
                      summary="Feedback on a production call (request id or trace id): score or thumbs, comment, "
                              "optional correction; sets the call's outcome on the usage ledger")
def feedback(request, body: FeedbackIn):
    actor = _actor(request)
    if isinstance(actor, ApiToken):
        team = actor.team
    elif body.team:
        team = Team.objects.filter(slug=body.team).first()
    else:
        team = request_team(request_id=body.request_id) if body.request_id else None
    if team is None:
        raise Http404("Say which team this feedback is for (team), or send it with the team's token.")
    if not can(actor, Action.INGEST, team):
        raise PermissionDenied("Sending feedback needs an ingest token of the team (or an engineer's session).")
    dataset = None
    if body.dataset is not None:
        dataset = Dataset.objects.filter(pk=body.dataset, team=team).first()
        if dataset is None:
            raise Http404("No dataset of your team with this id.")
    fb = services.feedback_record(actor=actor, team=team, request_id=body.request_id, trace_id=body.trace_id,
                                  score=body.score, thumbs=body.thumbs, comment=body.comment,
                                  correction=body.correction, inputs=body.inputs, output=body.output, dataset=dataset,
                                  prompt_name=body.prompt_name, prompt_version=body.prompt_version,
                                  use_case_id=body.use_case_id, groundedness=body.groundedness)
    return Status(201, FeedbackOut(id=fb.pk, request_id=fb.request_id, success=fb.success,
                                   groundedness=fb.groundedness, overridden=fb.overridden,
                                   prompt_name=fb.prompt_name, prompt_version=fb.prompt_version,
                                   dataset_item=fb.dataset_item.key if fb.dataset_item else None))
