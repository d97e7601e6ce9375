"""Writes of the evals app (datasets live in datasets.py, the run loop in runner.py, gates in gates.py).

Each service validates, writes in one transaction, records one audit event last, and queues Celery work
with transaction.on_commit.
"""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.permissions import Action, can, user_of
from apps.audit.services import audit_record
from apps.costs.models import Outcome, UsageEvent
from apps.costs.services import usage_outcomes_set
from apps.evals import conf, queue
from apps.evals.datasets import dataset_items_add
from apps.evals.evaluators import EvalCase, evaluate, get_kind
from apps.evals.models import (
    ACTIVE_STATUSES,
    Dataset,
    DatasetItem,
    EvalRun,
    EvaluatorDefinition,
    Feedback,
    ItemSource,
    JudgeLabel,
    RunStatus,
    Thumbs,
)
from apps.evals.stats import cohens_kappa, kappa_words
from apps.evals.summary import compute_summary
from apps.evals.targets import CALL_OPTIONS, TargetError, get_target, item_fields
from apps.llm.models import Model, ModelKind
from apps.prompts.services import actor_label

EVALUATOR_NAME = re.compile(r"^[a-z0-9][a-z0-9._/-]{0,119}$")
MAX_EVALUATORS = 20
MAX_REPETITIONS = 10
MAX_CONCURRENCY = 64


# --- evaluator definitions ----------------------------------------------------------------------------------

def _check_definition(kind: str, params, threshold) -> tuple[dict, float]:
    errors: dict[str, list[str]] = {}
    spec = get_kind(kind)
    if spec is None:
        raise ValidationError({"kind": f"Unknown evaluator kind {kind!r}."})
    params = {} if params in (None, "") else params
    problems = spec.problems(params)
    if problems:
        errors["params"] = problems
    if threshold in (None, ""):
        threshold = spec.default_threshold
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        errors["threshold"] = ["A number from 0 to 1: an item passes when its score is at least this."]
    if errors:
        raise ValidationError(errors)
    return params, float(threshold)


@transaction.atomic
def evaluator_create(*, team, name: str, kind: str, params=None, threshold=None, description: str = "",
                     actor=None) -> EvaluatorDefinition:
    name = (name or "").strip()
    if not EVALUATOR_NAME.match(name):
        raise ValidationError({"name": "Lower-case letters, digits, '.', '_', '/' and '-', e.g. answer-correct."})
    params, threshold = _check_definition(kind, params, threshold)
    if EvaluatorDefinition.objects.filter(team=team, name=name).exists():
        raise ValidationError({"name": f"An evaluator named {name!r} exists: save a new version of it instead."})
    definition = EvaluatorDefinition.objects.create(team=team, name=name, kind=kind, params=params,
                                                    threshold=threshold, version=1, description=description,
                                                    created_by_label=actor_label(actor))
    audit_record(action="eval.evaluator.create", obj=definition, team=team,
                 object_repr=definition.label,
                 changes={"name": name, "kind": kind, "params": params, "threshold": threshold, "version": 1},
                 actor=actor)
    return definition


@transaction.atomic
def evaluator_revise(*, definition: EvaluatorDefinition, params=None, threshold=None, description=None,
                     actor=None) -> EvaluatorDefinition:
    """A new version of a named evaluator (same kind). Runs keep the version they pinned."""
    latest = (EvaluatorDefinition.objects.select_for_update()
              .filter(team=definition.team, name=definition.name).order_by("-version").first())
    params = latest.params if params is None else params
    threshold = latest.threshold if threshold is None else threshold
    params, threshold = _check_definition(latest.kind, params, threshold)
    description = latest.description if description is None else description
    if params == latest.params and threshold == latest.threshold and description == latest.description:
        raise ValidationError({"params": "Nothing changed: this is the same as version "
                                         f"{latest.version}."})
    new = EvaluatorDefinition.objects.create(team=latest.team, name=latest.name, kind=latest.kind, params=params,
                                             threshold=threshold, version=latest.version + 1,
                                             description=description, created_by_label=actor_label(actor))
    audit_record(action="eval.evaluator.version", obj=new, team=new.team, object_repr=new.label,
                 changes={"version": [latest.version, new.version],
                          "params": [latest.params, params] if params != latest.params else None,
                          "threshold": [latest.threshold, threshold] if threshold != latest.threshold else None},
                 actor=actor)
    return new


# --- runs ---------------------------------------------------------------------------------------------------

def config_hash(model: str, config: dict) -> str:
    body = json.dumps({"model": model, **(config or {})}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def evaluator_signature(definitions) -> str:
    ids = sorted(int(d.pk if hasattr(d, "pk") else d) for d in definitions)
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()


def clean_model_config(config) -> dict:
    if config in (None, ""):
        return {}
    if not isinstance(config, dict):
        raise ValidationError({"model_config": "An object of temperature, max_tokens, response_format."})
    unknown = sorted(set(config) - set(CALL_OPTIONS))
    problems = [f"{k}: unknown setting (use {', '.join(CALL_OPTIONS)})" for k in unknown]
    out = {}
    temperature = config.get("temperature")
    if temperature not in (None, ""):
        if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
            problems.append("temperature: a number from 0 to 2")
        else:
            out["temperature"] = temperature
    max_tokens = config.get("max_tokens")
    if max_tokens not in (None, ""):
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            problems.append("max_tokens: a positive whole number")
        else:
            out["max_tokens"] = max_tokens
    for key in ("response_format", "tools"):
        if config.get(key) not in (None, "", []):
            out[key] = config[key]
    cache = config.get("cache")
    if cache not in (None, "", False):  # the response cache (llm/cache.py): false turns a version's opt-in off
        if cache is True or isinstance(cache, dict):
            out["cache"] = cache
        else:
            problems.append('cache: true, false or {"ttl_seconds": N, "sampled": false}')
    if problems:
        raise ValidationError({"model_config": problems})
    return out


def _check_model(model: str) -> None:
    found = Model.objects.select_related("provider").filter(name=model).first()
    if found is None or found.kind != ModelKind.CHAT or not found.is_active or not found.provider.is_active:
        raise ValidationError({"model": f"{model!r} is not an active chat model in the catalog."})


def resolve_run_config(description, model: str = "", model_config=None) -> tuple[str, dict]:
    """The model and options a run uses: the target's defaults, overridden by what was given."""
    model = (model or "").strip() or description.default_model
    config = dict(description.default_config)
    if model_config:
        config.update(model_config)
    return model, clean_model_config(config)


def _check_one_item(target, target_ref: dict, dataset: Dataset, revision: int, input_map: dict) -> None:
    """Try the first item against the target (no model call); refuse the run, naming why and the fields."""
    if target.check_fn is None:
        return
    item = DatasetItem.objects.at_revision(dataset.pk, revision).order_by("position", "id").first()
    try:
        target.check_fn(target_ref, item, input_map)
    except TargetError as exc:
        raise ValidationError({"input_map": f"Item {item.key} cannot be rendered: {exc}. Map each prompt "
                                            f"variable to one of the item's fields: {', '.join(item_fields(item))}."})


def run_create(*, actor, dataset: Dataset, evaluators: list[EvaluatorDefinition], target_kind: str = "prompt_version",
               target_ref: dict | None = None, revision: int | None = None, model: str = "",
               model_config: dict | None = None, repetitions: int = 1, concurrency: int | None = None,
               input_map: dict | None = None, name: str = "", gate=None, enqueue: bool = True) -> EvalRun:
    """Create a queued run (one result row per item × repetition is made when it starts)."""
    target = get_target(target_kind)
    description = target.describe_fn(target_ref or {})
    errors: dict[str, list[str] | str] = {}
    revision = revision or dataset.latest_revision
    if not dataset.latest_revision:
        errors["dataset"] = "The dataset has no items yet."
    elif not isinstance(revision, int) or not 1 <= revision <= dataset.latest_revision:
        errors["revision"] = f"Choose a revision from 1 to {dataset.latest_revision}."
    definitions = list({d.pk: d for d in evaluators}.values())
    if not definitions:
        errors["evaluators"] = "Choose at least one evaluator."
    elif len(definitions) > MAX_EVALUATORS:
        errors["evaluators"] = f"At most {MAX_EVALUATORS} evaluators per run."
    elif any(d.team_id not in (None, description.team_id) for d in definitions):
        errors["evaluators"] = "Use evaluators of the prompt's team or the portal's shared ones."
    if isinstance(repetitions, bool) or not isinstance(repetitions, int) or not 1 <= repetitions <= MAX_REPETITIONS:
        errors["repetitions"] = f"From 1 to {MAX_REPETITIONS} runs per item."
    concurrency = concurrency or int(conf.get("EVALS_DEFAULT_CONCURRENCY"))
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_CONCURRENCY:
        errors["concurrency"] = f"From 1 to {MAX_CONCURRENCY} calls at a time."
    input_map = input_map or {}
    if not isinstance(input_map, dict) or not all(isinstance(k, str) and isinstance(v, str) and k and v
                                                  for k, v in input_map.items()):
        errors["input_map"] = "Map each prompt variable to an item input name (text → text)."
    try:
        model, config = resolve_run_config(description, model, model_config)
        _check_model(model)
    except ValidationError as exc:
        errors.update(exc.message_dict)
        model, config = model, {}
    if dataset.team_id is not None and dataset.team_id != description.team_id and not dataset.shared:
        errors["dataset"] = "The dataset belongs to another team and is not shared."
    if errors:
        raise ValidationError(errors)
    if actor is not None and not can(actor, Action.CHANGE, _team(description.team_id)):
        raise PermissionDenied("Only engineers of the owning team may start eval runs (they spend money).")
    count = DatasetItem.objects.at_revision(dataset.pk, revision).count()
    if count == 0:
        raise ValidationError({"revision": f"Revision {revision} has no items."})
    if gate is None:  # a gate's runs are its verdict; a hand-started run that cannot succeed is refused
        _check_one_item(target, target_ref or {}, dataset, revision, input_map)
    user = user_of(actor)
    run = EvalRun.objects.create(
        team_id=description.team_id, name=name[:200], target_kind=target_kind, target_ref=target_ref or {},
        target_label=description.label[:300], target_fingerprint=description.fingerprint,
        prompt_id=description.prompt_id, prompt_version_id=description.prompt_version_id, dataset=dataset,
        dataset_revision=revision, input_map=input_map, model=model, model_config=config,
        config_hash=config_hash(model, config), evaluator_signature=evaluator_signature(definitions),
        repetitions=repetitions, concurrency=concurrency, gate=gate, progress_total=count * repetitions,
        created_by=user, created_by_label=actor_label(actor),
    )
    run.evaluators.set(definitions)
    audit_record(action="eval.run.create", obj=run, team=run.team, object_repr=str(run)[:200],
                 changes={"target": run.target_label, "dataset": dataset.name, "revision": revision,
                          "model": model, "config": config, "evaluators": [d.label for d in definitions],
                          "repetitions": repetitions, "units": run.progress_total,
                          "gate": gate.pk if gate else None}, actor=actor)
    if enqueue:
        transaction.on_commit(lambda: queue.run_start_enqueue(run.pk))
    return run


def _team(team_id: int):
    return Team.objects.get(pk=team_id)


@transaction.atomic
def run_cancel(*, run: EvalRun, actor=None) -> EvalRun:
    locked = EvalRun.objects.select_for_update().get(pk=run.pk)
    if locked.status not in ACTIVE_STATUSES:
        raise ValidationError({"status": f"The run is already {locked.get_status_display().lower()}."})
    before = locked.status
    locked.cancel_requested = True
    locked.status = RunStatus.CANCELLED
    locked.finished_at = timezone.now()
    locked.summary = compute_summary(locked)
    locked.pass_rate = locked.summary.get("overall", {}).get("pass_rate")
    locked.mean_score = locked.summary.get("overall", {}).get("mean_score")
    locked.save(update_fields=["cancel_requested", "status", "finished_at", "summary", "pass_rate", "mean_score"])
    audit_record(action="eval.run.cancel", obj=locked, team=locked.team, object_repr=str(locked)[:200],
                 changes={"status": [before, locked.status], "done": locked.progress_done,
                          "total": locked.progress_total}, actor=actor)
    return locked


# --- judge calibration -------------------------------------------------------------------------------------

@transaction.atomic
def judge_label_add(*, evaluator: EvaluatorDefinition, output: str, human_passed: bool, inputs=None,
                    expected: str | None = None, result=None, actor=None) -> JudgeLabel:
    if evaluator.kind != "llm_judge":
        raise ValidationError({"evaluator": "Only LLM judges are calibrated against human labels."})
    if not isinstance(output, str) or not output.strip():
        raise ValidationError({"output": "Give the output the human judged."})
    label = JudgeLabel.objects.create(evaluator=evaluator, output=output, human_passed=bool(human_passed),
                                      inputs=inputs or {}, expected=expected, result=result,
                                      labelled_by_label=actor_label(actor))
    audit_record(action="eval.judge.label", obj=evaluator, team=evaluator.team, object_repr=evaluator.label,
                 changes={"label": label.pk, "human_passed": label.human_passed}, actor=actor)
    return label


def judge_calibrate(*, evaluator: EvaluatorDefinition) -> dict:
    """Run the judge over its human-labelled sample; store its verdicts; return agreement and kappa."""
    labels = list(JudgeLabel.objects.filter(evaluator=evaluator).order_by("id"))
    for label in labels:
        case = EvalCase(output=label.output, expected=label.expected, inputs=label.inputs or {},
                        team_id=evaluator.team_id)
        score = evaluate(evaluator.kind, case, evaluator.params, evaluator.threshold)
        JudgeLabel.objects.filter(pk=label.pk).update(judge_passed=score.passed, judge_score=score.score,
                                                      judge_reason=score.reason[:2000])
        label.judge_passed, label.judge_score, label.judge_reason = score.passed, score.score, score.reason
    return calibration_summary(labels)


def calibration_summary(labels: list[JudgeLabel]) -> dict:
    judged = [label for label in labels if label.judge_passed is not None]
    human = [label.human_passed for label in judged]
    judge = [label.judge_passed for label in judged]
    kappa = cohens_kappa(human, judge) if judged else None
    agreement = sum(1 for h, j in zip(human, judge, strict=True) if h == j) / len(judged) if judged else None
    return {"labels": len(labels), "judged": len(judged), "agreement": agreement, "kappa": kappa,
            "reading": kappa_words(kappa),
            "unjudged_reason": next((label.judge_reason for label in labels if label.judge_passed is None
                                     and label.judge_reason), "")}


# --- production feedback ------------------------------------------------------------------------------------

@transaction.atomic
def feedback_record(*, actor, request_id: str = "", trace_id: str = "", score=None, thumbs: str = "",
                    comment: str = "", correction: str = "", inputs=None, output: str = "",
                    dataset: Dataset | None = None, team=None, prompt_name: str = "",
                    prompt_version: int | None = None, use_case_id: int | None = None,
                    groundedness=None) -> Feedback:
    """Record feedback on one production call; set the call's outcome on the usage ledger; optionally add the
    trace (inputs, and the correction or the approved output as the expected answer) to a dataset.
    `groundedness`: the product's own score of the answer (0-1); it may come alone (no outcome then)."""
    errors: dict[str, str] = {}
    request_id, trace_id = (request_id or "").strip(), (trace_id or "").strip()
    if not request_id and not trace_id:
        errors["request_id"] = "Give the request id (or the trace id) of the call this feedback is about."
    if len(request_id) > 100 or len(trace_id) > 100:
        errors["request_id"] = "Ids are at most 100 characters."
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1):
        errors["score"] = "A number from 0 (bad) to 1 (good)."
    if thumbs and thumbs not in Thumbs.values:
        errors["thumbs"] = "up or down."
    if groundedness is not None and (isinstance(groundedness, bool) or not isinstance(groundedness, int | float)
                                     or not 0 <= groundedness <= 1):
        errors["groundedness"] = "A number from 0 (nothing supported) to 1 (every sentence supported)."
    if score is None and not thumbs and not correction and groundedness is None:
        errors["score"] = "Give a score, thumbs up/down, a correction, or a groundedness."
    if inputs is not None and not isinstance(inputs, dict):
        errors["inputs"] = "An object of the call's input variables."
    for name, value, most in (("prompt_version", prompt_version, 2**31 - 1), ("use_case_id", use_case_id, 2**63 - 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most):
            errors[name] = "A whole number from 1."
    event = None
    if request_id:
        event = UsageEvent.objects.filter(request_id=request_id).first()
    if event is not None and team is not None and event.team_id not in (None, team.pk):
        event = None  # another team's call: never reveal or touch it
    if dataset is not None and not inputs:
        errors["inputs"] = "Send the call's inputs to add it to a dataset."
    if errors:
        raise ValidationError(errors)
    if thumbs:
        success = thumbs == Thumbs.UP
    elif score is not None:
        success = score >= 0.5
    elif correction:
        success = False  # a correction alone says the answer was not right
    else:
        success = None  # a groundedness alone says nothing of the outcome
    overridden = bool(correction and correction.strip())
    feedback = Feedback.objects.create(
        team=team or (event.team if event is not None and event.team_id else None), request_id=request_id,
        trace_id=trace_id, score=score, thumbs=thumbs or "", comment=comment or "", correction=correction or "",
        inputs=inputs, output=output or "", prompt_name=(event.prompt_name if event else "") or prompt_name[:200],
        prompt_version=(event.prompt_version if event else None) or prompt_version,
        use_case_id=(event.use_case_id if event else None) or use_case_id,
        success=success, overridden=overridden, created_by_label=actor_label(actor),
        groundedness=float(groundedness) if groundedness is not None else None,
    )
    if event is not None and success is not None:
        usage_outcomes_set(outcomes=[{"request_id": request_id,
                                      "outcome": Outcome.SUCCESS.value if success else Outcome.FAILURE.value}],
                           actor=actor)
    if dataset is not None:
        expected = correction.strip() if overridden else (output if success and output else None)
        revision = dataset_items_add(
            dataset=dataset, actor=actor, source=ItemSource.FEEDBACK, source_ref=request_id or trace_id,
            message=f"from production feedback on {request_id or trace_id}",
            items=[{"inputs": inputs, "expected": expected, "tags": ["production"],
                    "metadata": {"request_id": request_id, "trace_id": trace_id, "comment": comment[:500]}}],
        )
        item = DatasetItem.objects.filter(dataset=dataset, added_in=revision.number).order_by("-id").first()
        Feedback.objects.filter(pk=feedback.pk).update(dataset_item=item)
        feedback.dataset_item = item
    audit_record(action="eval.feedback.record", obj=feedback, team=feedback.team,
                 object_repr=f"feedback on {request_id or trace_id}"[:200],
                 changes={"request_id": request_id, "trace_id": trace_id, "success": success,
                          "overridden": overridden, "prompt": feedback.prompt_name,
                          "version": feedback.prompt_version, "groundedness": feedback.groundedness}, actor=actor)
    return feedback


def latest_version_number(team, name: str) -> int:
    return EvaluatorDefinition.objects.filter(team=team, name=name).aggregate(v=Max("version"))["v"] or 0


ZERO = Decimal(0)
