"""The evaluator registry: every kind of evaluator the portal knows, by key.

A kind is a function `fn(case: EvalCase, params: dict) -> Score` plus its metadata (label, family, default
threshold, a parameter checker). An `EvaluatorDefinition` row pins one kind with parameters, a threshold and
a version; a run pins the definitions it used.

Families live one per module: deterministic, semantic (embeddings, groundedness), judge (LLM-as-judge) and
custom (entry points `genai_portal.evaluators` and the `EVALS_CUSTOM_EVALUATORS` setting). Register your own:

    from apps.evals.evaluators import Score, evaluator

    @evaluator("ends_politely", label="Ends politely", default_threshold=1.0)
    def ends_politely(case, params):
        ok = case.output.rstrip().endswith(tuple(params.get("endings", ["Thanks!"])))
        return Score(1.0 if ok else 0.0, "" if ok else "does not end with a polite closing")
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

log = logging.getLogger(__name__)


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
_loaded = False
_load_lock = threading.Lock()
_loading = threading.local()


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


def _load() -> None:
    """Import the built-in families (they register) once. Thread-safe: a run's worker threads score at the
    same moment, and a thread that saw "loaded" before the imports ended found no kind and scored the item
    None (the kill test's "one unit not passed" flake)."""
    global _loaded
    if _loaded or getattr(_loading, "active", False):
        return  # loaded, or re-entered by an import below (this thread holds the lock): use what is registered
    with _load_lock:
        if _loaded:
            return
        _loading.active = True
        try:
            from apps.evals.evaluators import custom, deterministic, judge, semantic  # noqa: F401

            custom.load_custom_evaluators()
        finally:
            _loading.active = False
            _loaded = True  # as before: a broken custom evaluator is reported once, not on every item


def kinds() -> list[EvaluatorKind]:
    _load()
    order = {"deterministic": 0, "semantic": 1, "judge": 2, "custom": 3}
    return sorted(_kinds.values(), key=lambda k: (order.get(k.family, 9), k.label))


def get_kind(key: str) -> EvaluatorKind | None:
    _load()
    return _kinds.get(key)


def evaluate(kind_key: str, case: EvalCase, params: dict, threshold: float) -> Score:
    """Run one evaluator; never raises: a failure becomes an unscored Score with the reason."""
    kind = get_kind(kind_key)
    if kind is None:
        return Score(None, f"unknown evaluator kind {kind_key!r} (not registered in this process)")
    try:
        result = kind.fn(case, params or {})
    except Exception as exc:  # noqa: BLE001 - one evaluator's bug must not lose the item's other scores
        log.warning("evaluator %s failed", kind_key, exc_info=True)
        return Score(None, f"evaluator error: {type(exc).__name__}: {exc}"[:500])
    if result.score is not None:
        result.score = min(1.0, max(0.0, float(result.score)))
        if result.passed is None:
            result.passed = result.score >= threshold - 1e-12
    return result
