"""Reads of the evals app, already restricted (in SQL) to what the actor may see."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Avg, Count, Exists, F, Func, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce
from django.http import Http404

from apps.accounts.permissions import Action, can, is_admin, is_authenticated, require, restrict
from apps.evals.gates import production_version
from apps.evals.models import (
    GROUNDEDNESS_ONLY,
    Dataset,
    DatasetItem,
    DatasetRevision,
    EvalGate,
    EvalResult,
    EvalRun,
    EvaluatorDefinition,
    Feedback,
    RunStatus,
    UnitStatus,
)
from apps.evals.targets import describe_prompt_version, input_map_suggest, item_fields

# --- datasets ------------------------------------------------------------------------------------------------

def dataset_list(*, actor, action: Action | str = Action.VIEW) -> QuerySet[Dataset]:
    """Team datasets the actor may `action`, plus shared sets when only viewing."""
    if not is_authenticated(actor):
        return Dataset.objects.none()
    own = restrict(Dataset.objects.all(), actor, action)
    if Action(action) == Action.VIEW:
        own = Dataset.objects.filter(Q(pk__in=own.values("pk")) | Q(shared=True))
    return own.select_related("team").order_by("name")


def may_change_dataset(actor, dataset: Dataset) -> bool:
    if dataset.team_id is None:
        return is_admin(actor)
    return can(actor, Action.CHANGE, dataset)


def dataset_get(*, actor, pk: int, action: Action | str = Action.VIEW) -> Dataset:
    dataset = dataset_list(actor=actor).filter(pk=pk).first()
    if dataset is None:
        raise Http404("No dataset matches the given query.")
    if Action(action) != Action.VIEW and not may_change_dataset(actor, dataset):
        raise PermissionDenied("Only engineers of the owning team may change this dataset.")
    return dataset


def dataset_items(*, dataset: Dataset, revision: int, q: str = "", tag: str = "") -> QuerySet[DatasetItem]:
    items = DatasetItem.objects.at_revision(dataset.pk, revision)
    if tag:
        items = items.filter(tags__contains=[tag])
    if q:
        items = items.filter(Q(key__icontains=q) | Q(expected__icontains=q) | Q(inputs__icontains=q))
    return items.order_by("position", "id")


def dataset_revisions(*, dataset: Dataset) -> QuerySet[DatasetRevision]:
    return DatasetRevision.objects.filter(dataset=dataset).order_by("-number")


def dataset_tags(*, dataset: Dataset, revision: int) -> list[str]:
    tags = (DatasetItem.objects.at_revision(dataset.pk, revision).annotate(tag=Func(F("tags"), function="unnest"))
            .values_list("tag", flat=True).distinct())
    return sorted(tags)[:100]


# --- evaluators ----------------------------------------------------------------------------------------------

def evaluator_list(*, actor, latest_only: bool = True, team_id: int | None = None) -> QuerySet[EvaluatorDefinition]:
    """The actor's teams' evaluators and the portal's shared ones (team empty)."""
    if not is_authenticated(actor):
        return EvaluatorDefinition.objects.none()
    visible = restrict(EvaluatorDefinition.objects.all(), actor, Action.VIEW)
    qs = EvaluatorDefinition.objects.filter(Q(pk__in=visible.values("pk")) | Q(team__isnull=True))
    if team_id is not None:
        qs = qs.filter(Q(team_id=team_id) | Q(team__isnull=True))
    if latest_only:
        newer = (EvaluatorDefinition.objects.annotate(t=Coalesce("team_id", 0))
                 .filter(t=OuterRef("t"), name=OuterRef("name"), version__gt=OuterRef("version")))
        qs = qs.annotate(t=Coalesce("team_id", 0)).filter(~Exists(newer))
    return qs.select_related("team").order_by("name", "-version")


def evaluator_get(*, actor, pk: int) -> EvaluatorDefinition:
    found = evaluator_list(actor=actor, latest_only=False).filter(pk=pk).first()
    if found is None:
        raise Http404("No evaluator matches the given query.")
    return found


def evaluator_versions(definition: EvaluatorDefinition) -> QuerySet[EvaluatorDefinition]:
    return EvaluatorDefinition.objects.filter(team_id=definition.team_id, name=definition.name).order_by("-version")


# --- runs ---------------------------------------------------------------------------------------------------

def run_list(*, actor, status: str = "", prompt_id: int | None = None, dataset_id: int | None = None
             ) -> QuerySet[EvalRun]:
    runs = restrict(EvalRun.objects.all(), actor, Action.VIEW)
    if status:
        runs = runs.filter(status=status)
    if prompt_id:
        runs = runs.filter(prompt_id=prompt_id)
    if dataset_id:
        runs = runs.filter(dataset_id=dataset_id)
    return runs.select_related("team", "dataset").order_by("-created_at", "-id")


def run_get(*, actor, pk: int, action: Action | str = Action.VIEW) -> EvalRun:
    run = (restrict(EvalRun.objects.select_related("team", "dataset", "prompt", "prompt_version", "gate"), actor,
                    Action.VIEW).filter(pk=pk).first())
    if run is None:
        raise Http404("No eval run matches the given query.")
    if Action(action) != Action.VIEW:
        require(actor, action, run)
    return run


def run_results(*, run: EvalRun, failures: bool = False, q: str = "") -> QuerySet[EvalResult]:
    results = EvalResult.objects.filter(run=run)
    if failures:
        results = results.filter(Q(passed=False) | Q(status=UnitStatus.ERROR))
    if q:
        results = results.filter(Q(item__key__icontains=q) | Q(output__icontains=q))
    return (results.select_related("item")
            .only("id", "run_id", "repetition", "position", "status", "output", "latency_ms", "cost", "scores",
                  "score", "passed", "error", "item__key", "item__expected", "item__inputs", "item__id")
            .order_by("position", "item_id", "repetition"))


def result_get(*, run: EvalRun, pk: int) -> EvalResult:
    result = EvalResult.objects.select_related("item").filter(run=run, pk=pk).first()
    if result is None:
        raise Http404("No such result in this run.")
    return result


def baseline_for(run: EvalRun) -> EvalRun | None:
    """The run this one is judged against: its prompt's production version's latest finished run on the same
    dataset revision and evaluators (none when this run is of the production version itself)."""
    if run.prompt_id is None:
        return None

    production = production_version(run.prompt)
    if production is None or production.pk == run.prompt_version_id:
        return None
    return (EvalRun.objects.filter(prompt_version=production, dataset_id=run.dataset_id,
                                   dataset_revision=run.dataset_revision, evaluator_signature=run.evaluator_signature,
                                   status=RunStatus.FINISHED)
            .select_related("dataset").order_by("-finished_at", "-id").first())


def comparable_runs(*, actor, run: EvalRun, limit: int = 30) -> QuerySet[EvalRun]:
    return (run_list(actor=actor).filter(dataset_id=run.dataset_id, dataset_revision=run.dataset_revision,
                                         status=RunStatus.FINISHED).exclude(pk=run.pk)[:limit])


# --- gates ---------------------------------------------------------------------------------------------------

def gate_list(*, actor) -> QuerySet[EvalGate]:
    return restrict(EvalGate.objects.select_related("prompt", "team"), actor, Action.VIEW).order_by("prompt__name")


def gate_for(prompt) -> EvalGate | None:
    return EvalGate.objects.filter(prompt=prompt).select_related("prompt").first()


def input_map_prefill(*, version, dataset: Dataset) -> dict:
    """The input map a new run of `version` on `dataset` most likely needs: the prompt's gate mapping for that
    dataset (what its gating runs use), completed from the first item's fields and the prompt's variables."""
    item = DatasetItem.objects.at_revision(dataset.pk, dataset.latest_revision).order_by("position", "id").first()
    if item is None:
        return {}
    gate = gate_for(version.prompt)
    known = next((d.get("input_map") or {} for d in (gate.datasets if gate else []) if d.get("dataset") == dataset.pk),
                 {})
    variables = describe_prompt_version({"version_id": version.pk}).variables
    return input_map_suggest(variables, item_fields(item), known)


# --- feedback ------------------------------------------------------------------------------------------------

def feedback_list(*, actor) -> QuerySet[Feedback]:
    return restrict(Feedback.objects.select_related("team", "dataset_item"), actor, Action.VIEW).order_by(
        "-created_at", "-id")


def feedback_rates(*, actor) -> list[dict]:
    """Task success rate and human override rate per prompt version and use case, and the mean groundedness the
    products sent (None when none did)."""
    rows = (feedback_list(actor=actor).values("prompt_name", "prompt_version", "use_case_id")
            .annotate(n=Count("id", filter=~GROUNDEDNESS_ONLY), successes=Count("id", filter=Q(success=True)),
                      overrides=Count("id", filter=Q(overridden=True)), groundedness=Avg("groundedness"))
            .order_by("prompt_name", "-prompt_version", "use_case_id"))
    return [{**r, "success_rate": r["successes"] / r["n"] if r["n"] else None,
             "override_rate": r["overrides"] / r["n"] if r["n"] else None} for r in rows]


def latest_metric(*, prompt: str, dataset: str, metric: str) -> float | None:
    """For other apps' conditions (reviews): a metric of the latest finished run of `prompt` on `dataset` —
    the run's `pass_rate` or `mean_score`, or an evaluator's mean score (its pass rate if it has none) by name."""
    run = (EvalRun.objects.filter(prompt__name=prompt, dataset__name=dataset, status=RunStatus.FINISHED)
           .order_by("-finished_at", "-id").first())
    if run is None:
        return None
    if metric in ("pass_rate", "mean_score"):
        return getattr(run, metric)
    for entry in (run.summary or {}).get("evaluators", []):
        if entry.get("name") == metric:
            mean = entry.get("mean_score")
            value = mean.get("value") if isinstance(mean, dict) else mean
            return value if value is not None else entry.get("pass_rate")
    return None
