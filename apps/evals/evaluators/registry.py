"""The evaluator registry itself: what an evaluator sees and returns, the kinds by key, and how to add one. The
families (deterministic, semantic, judge, custom) import this module; the package (`apps.evals.evaluators`)
re-exports it and loads the families."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass
class EvalCase:
    """What an evaluator sees for one output."""

    output: str
    expected: str | None = None
    inputs: dict = field(default_factory=dict)
    contexts: list[str] = field(default_factory=list)
    latency_ms: int | None = None
    cost: Decimal | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    # Attribution for evaluators that call models (semantic, judge): costs.UsageContext fields.
    team_id: int | None = None
    run_id: int | None = None


@dataclass
class Score:
    """score in [0, 1], or None when the evaluator could not score (said why in `reason`)."""

    score: float | None
    reason: str = ""
    passed: bool | None = None
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        out = {"score": None if self.score is None else round(float(self.score), 6), "passed": self.passed,
               "reason": self.reason[:2000]}
        if self.details:
            out["details"] = self.details
        return out


ParamCheck = Callable[[dict], list[str]]


@dataclass(frozen=True)
class EvaluatorKind:
    key: str
    label: str
    fn: Callable[[EvalCase, dict], Score]
    family: str = "custom"
    default_threshold: float = 1.0
    check_params: ParamCheck | None = None
    description: str = ""
    example: dict = field(default_factory=dict)
    calls_models: bool = False

    def problems(self, params: Any) -> list[str]:
        if not isinstance(params, dict):
            return ["Parameters must be a JSON object."]
        if self.check_params is None:
            return []
        try:
            return list(self.check_params(params))
        except Exception as exc:  # noqa: BLE001 - a checker bug must read as a problem, not a 500
            return [f"could not check the parameters: {exc}"]


_kinds: dict[str, EvaluatorKind] = {}


def register_evaluator(key: str, label: str, fn: Callable[[EvalCase, dict], Score], *, family: str = "custom",
                       default_threshold: float = 1.0, check_params: ParamCheck | None = None,
                       description: str = "", example: dict | None = None, calls_models: bool = False) -> None:
    """Add (or replace, by key) an evaluator kind."""
    _kinds[key] = EvaluatorKind(key, label, fn, family, default_threshold, check_params,
                                description or (fn.__doc__ or "").strip().split("\n")[0], example or {},
                                calls_models)


def evaluator(key: str, *, label: str | None = None, **options):
    """Decorator form of register_evaluator."""

    def wrap(fn):
        register_evaluator(key, label or key.replace("_", " ").capitalize(), fn, **options)
        return fn

    return wrap


def unregister_evaluator(key: str) -> None:
    _kinds.pop(key, None)
