"""Semantic evaluators: embedding similarity to the reference, and groundedness in the context passages.

Embeddings go through apps.llm.calls.embed (priced and recorded under source "eval"), with the local MiniLM
(`local-minilm`) unless the parameters name another embedding model.
"""

from __future__ import annotations

from apps.costs.models import Source
from apps.costs.services import UsageContext
from apps.evals.evaluators.groundedness import DEFAULT_THRESHOLD, _cosine, groundedness
from apps.evals.evaluators.registry import EvalCase, Score, register_evaluator
from apps.llm.calls import embed

FAMILY = "semantic"
DEFAULT_MODEL = "local-minilm"


def _usage(case: EvalCase, feature: str):
    return UsageContext(source=Source.EVAL, team_id=case.team_id, feature=feature)


def _embed(case: EvalCase, params: dict, texts: list[str], feature: str) -> list[list[float]]:
    return embed(model=params.get("model") or DEFAULT_MODEL, texts=texts, context=_usage(case, feature)).vectors


def embedding_similarity(case: EvalCase, params: dict) -> Score:
    """Cosine similarity of the output's and the expected output's embeddings."""
    if case.expected is None:
        return Score(None, "the item has no expected output to compare with")
    if not case.output.strip():
        return Score(0.0, "empty output")
    a, b = _embed(case, params, [case.output, case.expected], "eval-similarity")
    similarity = max(0.0, _cosine(a, b))
    return Score(similarity, f"similarity {similarity:.2f} to the expected output")


def groundedness_evaluator(case: EvalCase, params: dict) -> Score:
    """Share of the answer's sentences supported by the context passages; unsupported ones listed."""
    if not case.contexts:
        return Score(None, "the item has no context passages")
    result = groundedness(case.output, case.contexts, threshold=params.get("support_threshold", DEFAULT_THRESHOLD),
                          embed_fn=lambda texts: _embed(case, params, texts, "eval-groundedness"))
    if result.score is None:
        return Score(None, "nothing to judge: the answer has no factual sentence"
                     + (" (it abstained)" if result.abstentions else ""))
    reason = ""
    if result.unsupported:
        reason = "unsupported: " + " | ".join(s[:200] for s in result.unsupported[:5])
    return Score(result.score, reason, details={
        "unsupported": result.unsupported[:20],
        "supported": [[s[:200], i + 1, sim] for s, i, sim in result.supported[:20]],
    })


def _check(params):
    problems = []
    if "model" in params and not isinstance(params["model"], str):
        problems.append("model: the name of an embedding model in the catalog.")
    value = params.get("support_threshold")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1):
        problems.append("support_threshold: a number from 0 to 1.")
    return problems


def register() -> None:
    """Called by the registry's loader (apps.evals.evaluators)."""
    register_evaluator("embedding_similarity", "Embedding similarity", embedding_similarity, family=FAMILY,
                       default_threshold=0.75, check_params=_check, example={"model": DEFAULT_MODEL},
                       calls_models=True)
    register_evaluator("groundedness", "Groundedness", groundedness_evaluator, family=FAMILY,
                       default_threshold=0.8, check_params=_check, example={"support_threshold": DEFAULT_THRESHOLD},
                       calls_models=True)
