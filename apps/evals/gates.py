"""Release gates: per prompt, the gating datasets (pinned revisions), evaluators (pinned versions),
thresholds and the allowed regression against the baseline (the production version's latest run).

The `eval_gate` check of a promotion request passes only with a finished run of the exact version content
hash × dataset revision × evaluator versions × model config that meets the thresholds and does not regress
more than allowed. `gate_runs_ensure` starts (or reuses) those runs: `manage.py eval_gate` and
`POST /api/v1/evals/gate` use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from apps.audit.services import audit_record
from apps.evals.models import (
    ACTIVE_STATUSES,
    Dataset,
    EvalGate,
    EvalGateChange,
    EvalRun,
    EvaluatorDefinition,
    RunStatus,
)
from apps.evals.services import _check_model, config_hash, evaluator_signature, resolve_run_config, run_create
from apps.evals.stats import mcnemar_exact
from apps.evals.summary import compare_runs
from apps.evals.targets import describe_prompt_version
from apps.prompts.models import PRODUCTION, Label
from apps.prompts.registry import CheckOutcome
from apps.prompts.services import actor_label

# --- setting a gate -----------------------------------------------------------------------------------------

def _snapshot(gate: EvalGate, evaluator_ids: list[int]) -> dict:
    return {"datasets": gate.datasets, "evaluators": sorted(evaluator_ids),
            "thresholds": {str(k): v for k, v in (gate.thresholds or {}).items()},
            "min_pass_rate": gate.min_pass_rate, "max_regression": gate.max_regression, "model": gate.model,
            "repetitions": gate.repetitions}


def _rate(value, name: str, errors: dict) -> float | None:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            errors[name] = "A number from 0 to 1."
            return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        errors[name] = "A number from 0 to 1."
        return None
    return float(value)


def _clean_datasets(prompt, datasets: list[dict], errors: dict) -> list[dict]:
    """The gating datasets as stored on the gate: the prompt team's or shared ones, a pinned revision each."""
    clean = []
    for entry in datasets or []:
        dataset = entry.get("dataset")
        dataset = dataset if isinstance(dataset, Dataset) else Dataset.objects.filter(pk=dataset).first()
        if dataset is None:
            errors["datasets"] = "Choose existing datasets."
            continue
        if dataset.team_id not in (None, prompt.team_id) and not dataset.shared:
            errors["datasets"] = f"{dataset.name} belongs to another team and is not shared."
            continue
        revision = entry.get("revision") or dataset.latest_revision
        if not dataset.latest_revision or not 1 <= int(revision) <= dataset.latest_revision:
            errors["datasets"] = f"{dataset.name} has no revision {revision}."
            continue
        input_map = entry.get("input_map") or {}
        if not isinstance(input_map, dict):
            errors["datasets"] = "input_map must map prompt variables to item inputs."
            continue
        clean.append({"dataset": dataset.pk, "name": dataset.name, "revision": int(revision), "input_map": input_map})
    if not clean and "datasets" not in errors:
        errors["datasets"] = "Choose at least one gating dataset."
    if len({d["dataset"] for d in clean}) != len(clean):
        errors["datasets"] = "Each dataset once."
    return clean


def _clean_evaluators(prompt, evaluators: list[EvaluatorDefinition], errors: dict) -> list[EvaluatorDefinition]:
    definitions = list({d.pk: d for d in evaluators}.values())
    if not definitions:
        errors["evaluators"] = "Choose at least one evaluator."
    elif any(d.team_id not in (None, prompt.team_id) for d in definitions):
        errors["evaluators"] = "Use the prompt team's evaluators or the portal's shared ones."
    return definitions


def _clean_thresholds(thresholds: dict | None, definitions: list[EvaluatorDefinition], errors: dict) -> dict:
    """Per-evaluator thresholds (by evaluator id), only for the gate's evaluators; blanks dropped."""
    clean = {}
    for key, value in (thresholds or {}).items():
        if value in (None, ""):
            continue
        if str(key) not in {str(d.pk) for d in definitions}:
            errors["thresholds"] = "Thresholds are for the gate's evaluators."
            continue
        clean[str(key)] = _rate(value, "thresholds", errors)
    return clean


def _check_run_settings(model: str, repetitions, errors: dict) -> None:
    if isinstance(repetitions, bool) or not isinstance(repetitions, int) or not 1 <= repetitions <= 10:
        errors["repetitions"] = "From 1 to 10."
    if model:
        try:
            _check_model(model)
        except ValidationError as exc:
            errors.update(exc.message_dict)


def _gate_change_record(gate: EvalGate, *, prompt, actor, definitions, before: dict | None, after: dict,
                        reason: str) -> None:
    """Save the gate as its next version, with its history row and the audit event."""
    gate.version += 1
    gate.updated_at = timezone.now()
    gate.updated_by_label = actor_label(actor)
    gate.save()
    gate.evaluators.set(definitions)
    changes = ({k: [before[k], after[k]] for k in after if before[k] != after[k]} if before else after)
    EvalGateChange.objects.create(gate=gate, version=gate.version, snapshot=after, changes=changes,
                                  reason=reason or "", actor_label=actor_label(actor))
    audit_record(action="eval.gate.set", obj=gate, team=gate.team, object_repr=f"eval gate of {prompt.name}",
                 changes={"version": gate.version, "reason": reason, **changes}, actor=actor)


@transaction.atomic
def gate_set(*, prompt, actor, datasets: list[dict], evaluators: list[EvaluatorDefinition],
             thresholds: dict | None = None, min_pass_rate=0.9, max_regression=0.05, model: str = "",
             repetitions: int = 1, reason: str = "") -> EvalGate:
    """Create or change a prompt's gate. Each change is a new gate version, kept with who and why."""
    errors: dict = {}
    clean_datasets = _clean_datasets(prompt, datasets, errors)
    definitions = _clean_evaluators(prompt, evaluators, errors)
    min_rate = _rate(min_pass_rate, "min_pass_rate", errors)
    regression = _rate(max_regression, "max_regression", errors)
    clean_thresholds = _clean_thresholds(thresholds, definitions, errors)
    _check_run_settings(model, repetitions, errors)
    if errors:
        raise ValidationError(errors)
    gate = EvalGate.objects.select_for_update().filter(prompt=prompt).first()
    creating = gate is None
    before = None
    if creating:
        gate = EvalGate(prompt=prompt, team_id=prompt.team_id, version=0)
    else:
        before = _snapshot(gate, list(gate.evaluators.values_list("pk", flat=True)))
    gate.datasets, gate.thresholds = clean_datasets, clean_thresholds
    gate.min_pass_rate, gate.max_regression = min_rate, regression
    gate.model, gate.repetitions = (model or "").strip(), repetitions
    after = _snapshot(gate, [d.pk for d in definitions])
    if before == after:
        raise ValidationError({"__all__": "Nothing changed."})
    if not creating and not (reason or "").strip():
        raise ValidationError({"reason": "Say why the gate changes: it is locked, and changes are kept in its "
                                         "history."})
    _gate_change_record(gate, prompt=prompt, actor=actor, definitions=definitions, before=before, after=after,
                        reason=reason)
    return gate


# --- what a gate requires of a version ----------------------------------------------------------------------

@dataclass
class RunSpec:
    dataset: Dataset
    revision: int
    input_map: dict
    definitions: list[EvaluatorDefinition]
    model: str
    model_config: dict
    config_hash: str
    signature: str
    repetitions: int
    fingerprint: str
    gate_model: str = ""


def gate_specs(gate: EvalGate, version) -> list[RunSpec]:
    description = describe_prompt_version({"version_id": version.pk})
    model, config = resolve_run_config(description, gate.model)
    definitions = list(gate.evaluators.all())
    datasets = {d.pk: d for d in Dataset.objects.filter(pk__in=[e["dataset"] for e in gate.datasets])}
    specs = []
    for entry in gate.datasets:
        dataset = datasets.get(entry["dataset"])
        if dataset is None:
            continue
        specs.append(RunSpec(dataset, entry["revision"], entry.get("input_map") or {}, definitions, model, config,
                             config_hash(model, config), evaluator_signature(definitions), gate.repetitions,
                             version.content_hash, gate.model))
    return specs


def matching_runs(spec: RunSpec, version, *, statuses=(RunStatus.FINISHED,)):
    return (EvalRun.objects.filter(prompt_id=version.prompt_id, target_kind="prompt_version",
                                   target_fingerprint=spec.fingerprint, dataset=spec.dataset,
                                   dataset_revision=spec.revision, evaluator_signature=spec.signature,
                                   config_hash=spec.config_hash, repetitions__gte=spec.repetitions,
                                   input_map=spec.input_map, status__in=statuses)
            .order_by("-finished_at", "-created_at", "-id"))


def production_version(prompt):
    label = Label.objects.filter(prompt=prompt, name=PRODUCTION).select_related("version").first()
    return label.version if label else None


def baseline_run(spec: RunSpec, baseline_version) -> EvalRun | None:
    """The production version's latest finished run on the same dataset revision, evaluators and gate model."""
    if baseline_version is None:
        return None
    description = describe_prompt_version({"version_id": baseline_version.pk})
    model, config = resolve_run_config(description, spec.gate_model)
    return (EvalRun.objects.filter(prompt_version_id=baseline_version.pk, dataset=spec.dataset,
                                   dataset_revision=spec.revision, evaluator_signature=spec.signature,
                                   config_hash=config_hash(model, config), input_map=spec.input_map,
                                   status=RunStatus.FINISHED)
            .order_by("-finished_at", "-id").first())


@dataclass
class DatasetVerdict:
    dataset: str
    revision: int
    status: str  # passed | failed | missing | running
    run: EvalRun | None = None
    baseline: EvalRun | None = None
    problems: list[str] = field(default_factory=list)
    pass_rate: float | None = None
    baseline_pass_rate: float | None = None
    mcnemar_p: float | None = None


@dataclass
class GateVerdict:
    gate: EvalGate
    version: object
    datasets: list[DatasetVerdict]

    @property
    def status(self) -> str:
        statuses = {d.status for d in self.datasets}
        if not self.datasets:
            return "missing"
        for status in ("failed", "missing", "running"):
            if status in statuses:
                return status
        return "passed"

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def summary(self) -> str:
        parts = []
        for d in self.datasets:
            if d.status == "passed":
                text = f"{d.dataset} r{d.revision}: passed ({_pct(d.pass_rate)} pass"
                text += f", baseline {_pct(d.baseline_pass_rate)})" if d.baseline else ", no baseline)"
            elif d.status == "missing":
                text = f"{d.dataset} r{d.revision}: no finished gating run of this version"
            elif d.status == "running":
                text = f"{d.dataset} r{d.revision}: the gating run is still running"
            else:
                text = f"{d.dataset} r{d.revision}: failed — {'; '.join(d.problems)}"
            parts.append(text)
        return ". ".join(parts) + "."

    def links(self) -> list[dict]:
        out = []
        for d in self.datasets:
            if d.run is not None:
                out.append({"label": f"Run #{d.run.pk} ({d.dataset} r{d.revision})",
                            "url": reverse("evals:run_detail", args=[d.run.pk])})
            if d.run is not None and d.baseline is not None:
                out.append({"label": f"Compare with baseline run #{d.baseline.pk}",
                            "url": reverse("evals:compare") + f"?baseline={d.baseline.pk}&candidate={d.run.pk}"})
        return out

    def as_dict(self) -> dict:
        return {"status": self.status, "passed": self.passed, "summary": self.summary(),
                "gate_version": self.gate.version, "prompt": self.gate.prompt.name, "version": self.version.number,
                "content_hash": self.version.content_hash,
                "datasets": [{"dataset": d.dataset, "revision": d.revision, "status": d.status,
                              "run": d.run.pk if d.run else None, "baseline_run": d.baseline.pk if d.baseline else None,
                              "pass_rate": d.pass_rate, "baseline_pass_rate": d.baseline_pass_rate,
                              "mcnemar_p": d.mcnemar_p, "problems": d.problems} for d in self.datasets],
                "links": self.links()}


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def judge_run(gate: EvalGate, run: EvalRun, baseline: EvalRun | None) -> tuple[list[str], float | None]:
    """The problems that make `run` fail the gate (empty: it passes), and McNemar's p against the baseline."""
    summary = run.summary or {}
    problems = []
    rate = run.pass_rate
    if rate is None:
        problems.append("no item was scored")
    elif rate + 1e-12 < gate.min_pass_rate:
        problems.append(f"pass rate {_pct(rate)} < {_pct(gate.min_pass_rate)}")
    for entry in summary.get("evaluators", []):
        minimum = (gate.thresholds or {}).get(str(entry["id"]))
        if minimum is None:
            continue
        if entry["pass_rate"] is None:
            problems.append(f"{entry['name']} v{entry['version']} scored nothing")
        elif entry["pass_rate"] + 1e-12 < minimum:
            problems.append(f"{entry['name']} v{entry['version']} pass rate {_pct(entry['pass_rate'])} < "
                            f"{_pct(minimum)}")
    p_value = None
    if baseline is not None and baseline.pk != run.pk and rate is not None and baseline.pass_rate is not None:
        if rate + gate.max_regression + 1e-12 < baseline.pass_rate:
            problems.append(f"regression: {_pct(rate)} vs baseline {_pct(baseline.pass_rate)} (allowed "
                            f"{_pct(gate.max_regression)} less)")

        comparison = compare_runs(baseline, run)
        p_value = mcnemar_exact(comparison.regressions, comparison.improvements).p_value
    return problems, p_value


def gate_evaluate(gate: EvalGate, version, *, baseline_version=None) -> GateVerdict:
    if baseline_version is None:
        baseline_version = production_version(gate.prompt)
    verdicts = []
    for spec in gate_specs(gate, version):
        verdict = DatasetVerdict(spec.dataset.name, spec.revision, "missing")
        run = matching_runs(spec, version).first()
        if run is None:
            active = matching_runs(spec, version, statuses=ACTIVE_STATUSES).first()
            if active is not None:
                verdict.status, verdict.run = "running", active
            verdicts.append(verdict)
            continue
        baseline = baseline_run(spec, baseline_version) if baseline_version else None
        if baseline is not None and baseline.pk == run.pk:
            baseline = None
        problems, p_value = judge_run(gate, run, baseline)
        verdict.run, verdict.baseline, verdict.problems = run, baseline, problems
        verdict.pass_rate = run.pass_rate
        verdict.baseline_pass_rate = baseline.pass_rate if baseline else None
        verdict.mcnemar_p = p_value
        verdict.status = "failed" if problems else "passed"
        verdicts.append(verdict)
    return GateVerdict(gate, version, verdicts)


# --- the promotion check --------------------------------------------------------------------------------------

def eval_gate_check(ctx):
    """Registered with the prompt catalog under `eval_gate` (see EvalsConfig.ready)."""
    gate = EvalGate.objects.filter(prompt=ctx.prompt).select_related("prompt").first()
    if gate is None:
        return CheckOutcome.not_configured(
            "No eval gate is set for this prompt (Evals → Gates).",
            links=[{"label": "Set a gate", "url": reverse("evals:gate_detail", args=[ctx.prompt.name])}])
    verdict = gate_evaluate(gate, ctx.to_version, baseline_version=ctx.from_version)
    details = {k: v for k, v in verdict.as_dict().items() if k != "summary"}  # summary is the outcome's own
    command = f"manage.py eval_gate --prompt {ctx.prompt.name} --version {ctx.to_version.number}"
    if verdict.passed:
        return CheckOutcome.passed(f"Gate v{gate.version}: {verdict.summary()}", **details)
    if verdict.status in ("missing", "running"):
        details["links"] = details["links"] + [{"label": "Start the gating run",
                                                "url": reverse("evals:gate_detail", args=[ctx.prompt.name])}]
        return CheckOutcome.failed(f"Gate v{gate.version}: {verdict.summary()} Run `{command}` (or the gate "
                                   "page's button), then re-run the checks.", **details)
    return CheckOutcome.failed(f"Gate v{gate.version}: {verdict.summary()}", **details)


# --- starting the gating runs ---------------------------------------------------------------------------------

def gate_runs_ensure(*, gate: EvalGate, version, actor, enqueue: bool = True) -> list[EvalRun]:
    """The gating runs of `version`: a finished or active matching run is reused; missing ones are created."""
    runs = []
    for spec in gate_specs(gate, version):
        run = matching_runs(spec, version).first() or matching_runs(
            spec, version, statuses=ACTIVE_STATUSES).first()
        if run is None:
            run = run_create(actor=actor, dataset=spec.dataset, revision=spec.revision, evaluators=spec.definitions,
                             target_ref={"version_id": version.pk}, model=spec.model, model_config=spec.model_config,
                             repetitions=spec.repetitions, input_map=spec.input_map, gate=gate,
                             name=f"gate v{gate.version} of {version.prompt.name} v{version.number}",
                             enqueue=enqueue)
        runs.append(run)
    return runs
