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

from apps.evals.evaluators import custom, deterministic, judge, registry, semantic
from apps.evals.evaluators.registry import (  # noqa: F401  (the package's public names)
    EvalCase,
    EvaluatorKind,
    ParamCheck,
    Score,
    evaluator,
    register_evaluator,
    unregister_evaluator,
)

log = logging.getLogger(__name__)

_loaded = False
_load_lock = threading.Lock()
_loading = threading.local()


def _load() -> None:
    """Register the built-in families and the custom evaluators once. Thread-safe: a run's worker threads score at the
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
            for family in (deterministic, semantic, judge):
                family.register()
            custom.load_custom_evaluators()
        finally:
            _loading.active = False
            _loaded = True  # as before: a broken custom evaluator is reported once, not on every item


def kinds() -> list[EvaluatorKind]:
    _load()
    order = {"deterministic": 0, "semantic": 1, "judge": 2, "custom": 3}
    return sorted(registry._kinds.values(), key=lambda k: (order.get(k.family, 9), k.label))


def get_kind(key: str) -> EvaluatorKind | None:
    _load()
    return registry._kinds.get(key)


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
