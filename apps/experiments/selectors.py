"""Reads of the experiments app: lists restricted to what the actor may see, the arms' comparison (from the
ledger rows the gateway attributed to each arm, joined to evals' feedback by request id), and the
rate-of-experimentation count the scorecards read.

    experiment_counts(use_case_ids=[...], since=..., until=...)   # {use_case_id: experiments started}
"""

from __future__ import annotations

import math
from datetime import datetime

from django.db import connection
from django.db.models import Count, QuerySet

from apps.accounts.permissions import Action, can, get_object_for, restrict, teams_for
from apps.experiments import stats
from apps.experiments.models import ENDED, Experiment, ExperimentArm, Status
from apps.prompts import selectors as prompt_selectors
from apps.reviews.models import UseCasePrompt


def experiment_list(*, actor, status: str = "") -> QuerySet[Experiment]:
    rows = restrict(Experiment.objects.select_related("prompt", "team"), actor, Action.VIEW)
    return rows.filter(status=status) if status else rows


def experiment_get(*, actor, pk: int, action: Action | str = Action.VIEW) -> Experiment:
    return get_object_for(actor, Experiment.objects.select_related("prompt", "team", "created_by"), action, pk=pk)


def arms_of(experiment: Experiment) -> list[ExperimentArm]:
    return list(experiment.arms.order_by("position"))


def experiment_counts(*, use_case_ids, since: datetime, until: datetime) -> dict[int, int]:
    """How many experiments were started (first start in [since, until)) per use case, for the scorecards'
    rate-of-experimentation KPI. Use cases with none are absent (0). Drafts never started do not count."""
    rows = (Experiment.objects.filter(use_case_id__in=list(use_case_ids), started_at__gte=since,
                                      started_at__lt=until)
            .values("use_case_id").annotate(n=Count("id")))
    return {row["use_case_id"]: row["n"] for row in rows}


def use_case_of_prompt(prompt_id: int) -> int | None:
    """The use case a prompt serves (reviews' link): what its experiments count for."""
    return UseCasePrompt.objects.filter(prompt_id=prompt_id).order_by("id").values_list("use_case_id",
                                                                                        flat=True).first()


def live_for_prompt(prompt_id: int) -> Experiment | None:
    return Experiment.objects.filter(prompt_id=prompt_id, status__in=[Status.RUNNING, Status.PAUSED]).first()


def arm_version(arm: ExperimentArm, prompt) -> int | None:
    """The version an arm serves now: its version, or where its label points."""
    if arm.version_number:
        return arm.version_number
    label = prompt_selectors.label_list(prompt=prompt).filter(name=arm.label).first()
    return label.version.number if label else None


def version_numbers(prompt) -> list[int]:
    return list(prompt_selectors.version_list(prompt=prompt).values_list("number", flat=True))


# --- the comparison ---------------------------------------------------------------------------------------------

# Per unit first (the end user or tenant the split is sticky on; a row without one, from before units were
# recorded, is its own unit), then per arm: the sums and the second moments the delta method needs (ADR 0117).
_AGGREGATES = """
WITH calls AS (
    SELECT e.experiment_arm AS arm, coalesce(nullif(e.experiment_unit, ''), e.request_id) AS unit, e.request_id,
           coalesce(e.cost, 0) AS cost, e.status, e.outcome, e.guardrail_actions IS NOT NULL AS unsafe
    FROM costs_usageevent e
    WHERE e.experiment_id = %s
), fb AS (
    SELECT DISTINCT ON (f.request_id) f.request_id, f.success, f.overridden
    FROM evals_feedback f JOIN calls c ON c.request_id = f.request_id
    ORDER BY f.request_id, f.created_at DESC, f.id DESC
), joined AS (
    SELECT c.arm, c.unit, c.cost, c.status, c.unsafe, fb.request_id IS NOT NULL AS has_feedback,
           coalesce(fb.overridden, false) AS overridden,
           coalesce(fb.success, CASE c.outcome WHEN 'success' THEN true WHEN 'failure' THEN false END) AS success
    FROM calls c LEFT JOIN fb USING (request_id)
), units AS (
    SELECT arm, count(*)::float8 AS n, count(*) FILTER (WHERE status = 'ok') AS ok,
           count(*) FILTER (WHERE unsafe)::float8 AS u, count(success)::float8 AS o,
           count(*) FILTER (WHERE success)::float8 AS s, count(*) FILTER (WHERE has_feedback)::float8 AS f,
           count(*) FILTER (WHERE overridden)::float8 AS v, sum(cost)::float8 AS cost,
           coalesce(sum(cost) FILTER (WHERE success IS NOT NULL), 0)::float8 AS c
    FROM joined GROUP BY arm, unit
)
SELECT arm, count(*), sum(n), sum(ok), sum(u), sum(o), sum(s), sum(f), sum(v), sum(cost), sum(c),
       sum(n * n), sum(u * u), sum(u * n), sum(o * o), sum(s * s), sum(s * o), sum(f * f), sum(v * v),
       sum(v * f), sum(c * c), sum(c * s)
FROM units GROUP BY arm
"""
_RANKED = """
SELECT arm, r, latency_ms FROM (
    SELECT e.experiment_arm AS arm, e.latency_ms,
           row_number() OVER (PARTITION BY e.experiment_arm ORDER BY e.latency_ms) AS r
    FROM costs_usageevent e WHERE e.experiment_id = %s AND e.status = 'ok'
) ranked
WHERE (arm, r) IN (SELECT * FROM unnest(%s::text[], %s::bigint[]))
"""
# Per arm: units; calls, ok, unsafe (calls with a guardrail action), outcomes (known), successes, feedback,
# overrides, cost (all calls), cost of the calls with a known outcome; then the per-unit second moments.
FIELDS = ("units", "calls", "ok", "unsafe", "outcomes", "successes", "feedback", "overrides", "cost", "oc_cost",
          "calls2", "unsafe2", "unsafe_calls", "outcomes2", "successes2", "successes_outcomes", "feedback2",
          "overrides2", "overrides_feedback", "oc_cost2", "oc_cost_successes")
COUNTS = frozenset({"units", "calls", "ok", "unsafe", "outcomes", "successes", "feedback", "overrides"})


def arm_counts(experiment_id: int) -> dict[str, dict]:
    """Per arm key: the totals (units, calls, …) and the sums over units the per-unit intervals need."""
    with connection.cursor() as cursor:
        cursor.execute(_AGGREGATES, [experiment_id])
        return {row[0]: {name: (int(v) if name in COUNTS else float(v)) for name, v in zip(FIELDS, row[1:],
                                                                                          strict=True)}
                for row in cursor.fetchall()}


def _latency(experiment_id: int, counts: dict[str, dict]) -> dict[str, dict]:
    """p50 and p95 of each arm's answered calls with their distribution-free 95 % intervals."""
    wanted: dict[str, dict[str, tuple[int, int, int]]] = {}
    for arm, c in counts.items():
        n = c["ok"]
        if n:
            wanted[arm] = {q: (max(1, math.ceil(n * float(q[1:]) / 100)), *stats.quantile_ci(n, float(q[1:]) / 100))
                           for q in ("p50", "p95")}
    pairs = {(arm, r) for arm, qs in wanted.items() for ranks in qs.values() for r in ranks if r is not None}
    if not pairs:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_RANKED, [experiment_id, [a for a, _ in pairs], [r for _, r in pairs]])
        value = {(arm, r): ms for arm, r, ms in cursor.fetchall()}
    return {arm: {q: {"value": value.get((arm, ranks[0])), "low": value.get((arm, ranks[1])),
                      "high": value.get((arm, ranks[2]))} for q, ranks in qs.items()}
            for arm, qs in wanted.items()}


def _ratio(c: dict, x: str, y: str) -> tuple[float, float] | None:
    """Σx / Σy over the arm's units and its per-unit delta-method variance (stats.ratio_variance)."""
    return stats.ratio_variance(c[x], c[f"{x}2"], c[y], c[f"{y}2"], c[f"{x}_{y}"], c["units"])


def _rate(c: dict, x: str, y: str) -> dict:
    """A rate of the arm (k of n calls) with its 95 % interval per unit, clipped to [0, 1]."""
    k, n = c[x], c[y]
    estimate = _ratio(c, x, y)
    half = stats.Z95 * math.sqrt(estimate[1]) if estimate else None
    value = k / n if n else None
    return {"k": k, "n": n, "units": c["units"], "value": value,
            "low": max(0.0, value - half) if half is not None else None,
            "high": min(1.0, value + half) if half is not None else None}


def _difference(control: dict, c: dict, x: str, y: str, *, tau2: float, alpha: float) -> stats.Sequential | None:
    """The mSPRT of (treatment − control) on a rate, with the per-unit variances of both arms (independent:
    units are randomised)."""
    a, b = _ratio(control, x, y), _ratio(c, x, y)
    if a is None or b is None:
        return None
    return stats.msprt_normal(b[0] - a[0], a[1] + b[1], tau2=tau2, alpha=alpha)


def _sequential(test: stats.Sequential | None) -> dict | None:
    if test is None:
        return None
    return {"difference": test.difference, "low": test.low, "high": test.high, "p_value": test.p_value}


def comparison(experiment: Experiment, arms: list[ExperimentArm] | None = None) -> dict:
    """The arms compared, as plain data (the page renders it; an ended experiment stores it as its result).

    The unit of analysis is the unit of randomisation (the experiment's end user or tenant): rates and cost per
    success are ratios of per-unit sums with delta-method 95 % intervals (ADR 0117). Decision metric: task
    success (Feedback.success by request id, else the ledger's reported outcome), tested against the control
    with the mSPRT on the per-unit variance (always-valid p-value and interval; ADR 0109). Guard metric: safety
    violations (calls with a guardrail action), same test. The others are 95 % intervals, not tests. A sample
    ratio mismatch (`srm`) not acknowledged makes the result untrustworthy: no winner is named."""
    arms = arms if arms is not None else arms_of(experiment)
    counts = arm_counts(experiment.pk)
    latency = _latency(experiment.pk, counts)
    tau2, alpha = experiment.mde ** 2, experiment.alpha
    empty = dict.fromkeys(FIELDS, 0)
    control = counts.get(arms[0].key, empty) if arms else empty
    srm = sample_ratio(experiment, arms, {key: c["units"] for key, c in counts.items()})
    rows = []
    for arm in arms:
        c = counts.get(arm.key, empty)
        cost = stats.ratio_ci(c["oc_cost"], c["oc_cost2"], c["successes"], c["successes2"],
                              c["oc_cost_successes"], c["units"])
        row = {"key": arm.key, "target": arm.target, "weight": arm.weight, "control": arm.is_control,
               "version": arm_version(arm, experiment.prompt), "model": arm.model,
               "units": c["units"], "calls": c["calls"], "outcomes": c["outcomes"], "cost_total": c["cost"],
               "success": _rate(c, "successes", "outcomes"), "override": _rate(c, "overrides", "feedback"),
               "safety": _rate(c, "unsafe", "calls"),
               "cost_per_success": dict(zip(("value", "low", "high"), cost, strict=True)) if cost else None,
               "latency": latency.get(arm.key, {}), "enough": c["outcomes"] >= experiment.min_outcomes}
        if not arm.is_control:
            success = _difference(control, c, "successes", "outcomes", tau2=tau2, alpha=alpha)
            safety = _difference(control, c, "unsafe", "calls", tau2=tau2, alpha=alpha)
            row["test"], row["safety_test"] = _sequential(success), _sequential(safety)
            row["verdict"], row["winner"] = _verdict(experiment, control, c, success, safety,
                                                     trusted=srm["trustworthy"])
        rows.append(row)
    enough = all(r["enough"] for r in rows) if rows else False
    return {"arms": rows, "enough": enough, "alpha": experiment.alpha, "mde": experiment.mde,
            "min_outcomes": experiment.min_outcomes, "unit": experiment.unit, "srm": srm,
            "trustworthy": srm["trustworthy"], "winner": next((r["key"] for r in rows if r.get("winner")), None)}


SRM_ALPHA = 0.001  # the usual threshold of a sample-ratio-mismatch alarm: a real mismatch, not chance


def units_per_arm(experiment_id: int) -> dict[str, int]:
    """How many units (end users or tenants; a row without one counts alone) the gateway assigned to each arm."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT experiment_arm, count(DISTINCT coalesce(nullif(experiment_unit, ''), request_id)) "
                       "FROM costs_usageevent WHERE experiment_id = %s GROUP BY experiment_arm", [experiment_id])
        return dict(cursor.fetchall())


def sample_ratio(experiment: Experiment, arms: list[ExperimentArm], units: dict[str, int]) -> dict:
    """The sample-ratio-mismatch check: Pearson's chi-square of the units assigned to each arm against the
    configured weights. `mismatch` when p < 0.001 (tested once every arm expects at least 5 units);
    `trustworthy` is False while a mismatch (found now, or alarmed by the beat earlier) is not acknowledged."""
    observed = [units.get(arm.key, 0) for arm in arms]
    total = sum(observed)
    weights = [arm.weight for arm in arms]
    testable = len(arms) >= 2 and total > 0 and min(total * w / sum(weights) for w in weights) >= 5
    p_value = stats.chi_square(observed, weights)[1] if testable else None
    mismatch = p_value is not None and p_value < SRM_ALPHA
    acknowledged = experiment.srm_acknowledged_at is not None
    alarmed = experiment.srm_alarm_at is not None
    return {"observed": dict(zip([a.key for a in arms], observed, strict=True)),
            "expected": {a.key: total * a.weight / sum(weights) for a in arms} if total else {},
            "p_value": p_value, "threshold": SRM_ALPHA, "mismatch": mismatch, "alarmed": alarmed,
            "acknowledged": acknowledged, "trustworthy": acknowledged or not (mismatch or alarmed)}


def _verdict(experiment, control: dict, c: dict, success, safety, *, trusted: bool = True) -> tuple[str, bool]:
    """What the page says about one arm against the control, and whether it is a winner to promote."""
    alpha, need = experiment.alpha, experiment.min_outcomes
    short = [n for n in (control["outcomes"], c["outcomes"]) if n < need]
    if short:
        return (f"Not enough data yet: {min(control['outcomes'], c['outcomes'])} of {need} outcomes in the "
                f"smaller arm."), False
    if safety is not None and safety.significant(alpha) and safety.difference > 0:
        return "More safety violations than the control (significant): do not promote.", False
    if not trusted:
        return "Sample ratio mismatch: the comparison is untrustworthy until the mismatch is acknowledged.", False
    if success is None or not success.significant(alpha):
        return "No significant difference in task success yet.", False
    if success.difference > 0:
        return f"Better task success than the control (p = {success.p_value:.3g}): a winner.", True
    return f"Worse task success than the control (p = {success.p_value:.3g}).", False


def ended_result(experiment: Experiment) -> dict | None:
    """The stored result of an ended experiment, else the live comparison."""
    if experiment.status in ENDED and experiment.result:
        return experiment.result
    return comparison(experiment)


def prompt_choices(*, actor):
    """The prompts this person may run experiments on: those of teams where they are engineers or owners."""
    return prompt_selectors.prompt_list(actor=actor).filter(team__in=teams_for(actor, Action.CHANGE)).order_by("name")


def prompt_for(*, actor, name: str, action: Action | str = Action.CHANGE):
    return prompt_selectors.prompt_get(actor=actor, name=name, action=action)


def may_change(actor, experiment: Experiment) -> bool:
    return can(actor, Action.CHANGE, experiment)
