"""Aggregates of a run (computed once when it finishes, stored on the run) and comparisons of two runs."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.exceptions import ValidationError

from apps.evals.models import EvalResult, EvalRun, UnitStatus
from apps.evals.stats import (
    Z95,
    bootstrap_mean_interval,
    mcnemar_exact,
    paired_bootstrap,
    percentile,
    repetition_rates,
    wilson_interval,
)

BOOTSTRAP_MAX_N = 2000  # above this, the normal approximation is as good and far cheaper


def mean_interval(values: list[float]) -> dict:
    if len(values) <= BOOTSTRAP_MAX_N:
        return bootstrap_mean_interval(values).as_dict()
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = Z95 * sd / math.sqrt(n)
    return {"value": mean, "low": max(0.0, mean - half), "high": min(1.0, mean + half)}


def compute_summary(run: EvalRun) -> dict:
    definitions = list(run.evaluators.all().order_by("name", "version"))
    rows = EvalResult.objects.filter(run_id=run.pk).exclude(
        status__in=[UnitStatus.PENDING, UnitStatus.RUNNING]).values_list(
        "item_id", "status", "scores", "passed", "score", "latency_ms", "cost", "input_tokens", "output_tokens")
    per_eval = {str(d.pk): {"scores": [], "passed": 0, "scored": 0, "unscored": 0, "reasons": Counter()}
                for d in definitions}
    overall_scores, verdicts, per_item = [], [], defaultdict(list)
    latencies, cost, unpriced, tokens_in, tokens_out = [], Decimal(0), 0, 0, 0
    units = errors = 0
    for item_id, status, scores, passed, score, latency, unit_cost, t_in, t_out in rows.iterator(chunk_size=5000):
        units += 1
        if status == UnitStatus.ERROR:
            errors += 1
            continue
        if latency is not None:
            latencies.append(latency)
        if unit_cost is None:
            unpriced += 1
        else:
            cost += unit_cost
        tokens_in += t_in or 0
        tokens_out += t_out or 0
        if score is not None:
            overall_scores.append(score)
        if passed is not None:
            verdicts.append(bool(passed))
            per_item[item_id].append(bool(passed))
        for key, value in (scores or {}).items():
            bucket = per_eval.get(key)
            if bucket is None:
                continue
            if value.get("score") is None:
                bucket["unscored"] += 1
                if value.get("reason"):
                    bucket["reasons"][value["reason"][:120]] += 1
                continue
            bucket["scored"] += 1
            bucket["scores"].append(float(value["score"]))
            if value.get("passed"):
                bucket["passed"] += 1
            elif value.get("reason"):
                bucket["reasons"][value["reason"][:120]] += 1
    evaluators = []
    for definition in definitions:
        bucket = per_eval[str(definition.pk)]
        rate = wilson_interval(bucket["passed"], bucket["scored"])
        evaluators.append({
            "id": definition.pk, "name": definition.name, "version": definition.version, "kind": definition.kind,
            "threshold": definition.threshold, "scored": bucket["scored"], "passed": bucket["passed"],
            "unscored": bucket["unscored"], "pass_rate": rate.value, "pass_rate_low": rate.low,
            "pass_rate_high": rate.high, "mean_score": mean_interval(bucket["scores"]),
            "top_reasons": bucket["reasons"].most_common(3),
        })
    passed_count = sum(verdicts)
    rate = wilson_interval(passed_count, len(verdicts))
    mean = mean_interval(overall_scores)
    repetitions = repetition_rates(per_item) if run.repetitions > 1 else None
    return {
        "units": units, "errors": errors, "scored": len(verdicts), "passed": passed_count,
        "failed": len(verdicts) - passed_count, "unscored": units - errors - len(verdicts),
        "overall": {"pass_rate": rate.value, "pass_rate_low": rate.low, "pass_rate_high": rate.high,
                    "mean_score": mean["value"], "mean_score_low": mean["low"], "mean_score_high": mean["high"]},
        "evaluators": evaluators,
        "repetitions": repetitions.as_dict() if repetitions else None,
        "latency_ms": {"mean": (sum(latencies) / len(latencies)) if latencies else None,
                       "p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                       "max": max(latencies) if latencies else None},
        "cost": str(cost), "unpriced_calls": unpriced, "input_tokens": tokens_in, "output_tokens": tokens_out,
    }


# --- comparing two runs ------------------------------------------------------------------------------------

@dataclass
class ItemDelta:
    item_id: int
    key: str
    baseline_score: float | None
    candidate_score: float | None
    baseline_pass: float | None  # share of repetitions passed
    candidate_pass: float | None
    change: str  # regression | improvement | same | missing
    candidate_output: str = ""
    baseline_output: str = ""
    candidate_result_id: int | None = None
    baseline_result_id: int | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def delta(self) -> float | None:
        if self.baseline_score is None or self.candidate_score is None:
            return None
        return self.candidate_score - self.baseline_score


@dataclass
class Comparison:
    baseline: EvalRun
    candidate: EvalRun
    items: list[ItemDelta]
    bootstrap: dict
    mcnemar: dict
    evaluators: list[dict]
    regressions: int
    improvements: int

    @property
    def significant(self) -> bool:
        p_values = [v for v in (self.bootstrap.get("p_value"), self.mcnemar.get("p_value")) if v is not None]
        return any(p < 0.05 for p in p_values)

    def verdict(self) -> str:
        """A sentence a PM can read."""
        delta = self.bootstrap.get("mean_delta")
        if delta is None:
            return "Nothing to compare: no item was scored in both runs."
        direction = "better" if delta > 0 else "worse" if delta < 0 else "the same"
        p_boot, p_mc = _p(self.bootstrap.get("p_value")), _p(self.mcnemar.get("p_value"))
        if self.significant:
            return (f"The candidate scores {direction} ({delta:+.3f} mean score; paired bootstrap {p_boot}, "
                    f"McNemar {p_mc}): a real change, not noise.")
        return (f"No significant difference ({delta:+.3f} mean score; paired bootstrap {p_boot}, McNemar "
                f"{p_mc}): within noise at this sample size.")


def _p(value) -> str:
    if value is None:
        return "p = —"
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def _per_item(run: EvalRun) -> dict[int, dict]:
    out: dict[int, dict] = {}
    rows = (EvalResult.objects.filter(run=run, status__in=[UnitStatus.DONE, UnitStatus.ERROR])
            .values_list("id", "item_id", "item__key", "repetition", "score", "passed", "output", "scores")
            .order_by("item_id", "repetition"))
    for rid, item_id, key, repetition, score, passed, output, scores in rows.iterator(chunk_size=5000):
        entry = out.setdefault(item_id, {"key": key, "scores": [], "passes": [], "output": output, "id": rid,
                                         "reasons": []})
        if score is not None:
            entry["scores"].append(score)
        if passed is not None:
            entry["passes"].append(bool(passed))
        if repetition == 0:
            entry["output"], entry["id"] = output, rid
            entry["reasons"] = [v.get("reason") for v in (scores or {}).values()
                                if v.get("passed") is False and v.get("reason")]
    for entry in out.values():
        entry["score"] = sum(entry["scores"]) / len(entry["scores"]) if entry["scores"] else None
        entry["pass"] = sum(entry["passes"]) / len(entry["passes"]) if entry["passes"] else None
    return out


def compare_runs(baseline: EvalRun, candidate: EvalRun) -> Comparison:
    if (baseline.dataset_id, baseline.dataset_revision) != (candidate.dataset_id, candidate.dataset_revision):
        raise ValidationError("Compare runs on the same dataset revision: "
                              f"r{baseline.dataset_revision} of {baseline.dataset} vs "
                              f"r{candidate.dataset_revision} of {candidate.dataset}.")
    a, b = _per_item(baseline), _per_item(candidate)
    items, paired_a, paired_b = [], [], []
    regressions = improvements = 0
    for item_id in sorted(set(a) | set(b), key=lambda i: (b.get(i) or a.get(i))["key"]):
        left, right = a.get(item_id), b.get(item_id)
        if left is None or right is None:
            entry = left or right
            items.append(ItemDelta(item_id, entry["key"], left and left["score"], right and right["score"],
                                   left and left["pass"], right and right["pass"], "missing"))
            continue
        change = "same"
        if left["pass"] is not None and right["pass"] is not None:
            was, now = left["pass"] >= 0.5, right["pass"] >= 0.5
            if was and not now:
                change, regressions = "regression", regressions + 1
            elif now and not was:
                change, improvements = "improvement", improvements + 1
        if left["score"] is not None and right["score"] is not None:
            paired_a.append(left["score"])
            paired_b.append(right["score"])
        items.append(ItemDelta(item_id, right["key"], left["score"], right["score"], left["pass"], right["pass"],
                               change, right["output"], left["output"], right["id"], left["id"], right["reasons"]))
    by_id = {e["id"]: e for e in (baseline.summary or {}).get("evaluators", [])}
    evaluators = []
    for entry in (candidate.summary or {}).get("evaluators", []):
        before = by_id.get(entry["id"]) or next(
            (e for e in (baseline.summary or {}).get("evaluators", []) if e["name"] == entry["name"]), None)
        evaluators.append({"name": entry["name"], "version": entry["version"],
                           "baseline": before and before["pass_rate"], "candidate": entry["pass_rate"],
                           "delta": (entry["pass_rate"] - before["pass_rate"])
                           if before and before["pass_rate"] is not None and entry["pass_rate"] is not None
                           else None,
                           "same_version": bool(before and before["id"] == entry["id"])})
    return Comparison(baseline, candidate, items, paired_bootstrap(paired_a, paired_b).as_dict(),
                      mcnemar_exact(regressions, improvements).as_dict(), evaluators, regressions, improvements)
