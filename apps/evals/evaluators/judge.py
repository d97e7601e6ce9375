"""LLM-as-judge: a rubric, a score scale and a judge model (an OpenAI-compatible provider).

The offline local model is extractive, not a language model: with it the judge says it cannot judge and
leaves the item unscored, rather than inventing a score. Calibrate a judge against human labels on the
evaluator's page (Cohen's kappa, shown next to the judge).
"""

from __future__ import annotations

import json
import re

from apps.costs.models import Source
from apps.costs.services import UsageContext
from apps.evals.evaluators.registry import EvalCase, Score, register_evaluator
from apps.evals.targets import limited_chat
from apps.llm.calls import resolve_model
from apps.llm.errors import LlmError
from apps.llm.models import ModelKind, ProviderKind

FAMILY = "judge"
DEFAULT_RUBRIC = """You are grading an AI assistant's answer.

Criteria: {criteria}

Input:
{input}

Reference answer (may be empty):
{expected}

Context passages (may be empty):
{contexts}

Answer to grade:
{output}

Reply with exactly two lines:
SCORE: <an integer from {scale_min} to {scale_max}>
REASON: <one sentence>"""
DEFAULT_CRITERIA = "The answer is correct, complete, grounded in the context, and helpful."
_SCORE = re.compile(r"SCORE\s*[:=]\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_REASON = re.compile(r"REASON\s*[:=]\s*(.+)", re.IGNORECASE)
_ANY_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
CANNOT_JUDGE = ("The offline local model cannot judge (it is extractive, not a language model): choose a judge "
                "model from an OpenAI-compatible provider.")


def judge_prompt(case: EvalCase, params: dict) -> str:
    rubric = params.get("rubric") or DEFAULT_RUBRIC
    values = {
        "criteria": params.get("criteria") or DEFAULT_CRITERIA,
        "input": json.dumps(case.inputs, ensure_ascii=False, indent=1) if case.inputs else "",
        "expected": case.expected or "",
        "contexts": "\n".join(f"[{i}] {c}" for i, c in enumerate(case.contexts, start=1)),
        "output": case.output,
        "scale_min": str(params.get("scale_min", 1)),
        "scale_max": str(params.get("scale_max", 5)),
    }
    text = rubric
    for key, value in values.items():  # plain replacement: outputs may contain braces
        text = text.replace("{" + key + "}", value)
    return text


def parse_judgement(text: str, scale_min: float, scale_max: float) -> tuple[float | None, str]:
    match = _SCORE.search(text or "")
    raw = match.group(1) if match else None
    if raw is None:
        numbers = _ANY_NUMBER.findall(text or "")
        raw = numbers[0] if numbers else None
    if raw is None:
        return None, f"the judge gave no score: {text[:200]!r}"
    value = float(raw)
    if not scale_min <= value <= scale_max:
        return None, f"the judge's score {value:g} is outside {scale_min:g}..{scale_max:g}"
    reason = _REASON.search(text or "")
    return (value - scale_min) / (scale_max - scale_min), (reason.group(1).strip() if reason else "")[:500]


def llm_judge(case: EvalCase, params: dict) -> Score:
    """Scores the output against a rubric with a judge model."""
    try:
        model = resolve_model(params.get("model") or "", ModelKind.CHAT)
    except LlmError as exc:
        return Score(None, f"judge model: {exc}")
    if model.provider.kind == ProviderKind.LOCAL:
        return Score(None, CANNOT_JUDGE)
    scale_min, scale_max = float(params.get("scale_min", 1)), float(params.get("scale_max", 5))
    context = UsageContext(source=Source.EVAL, team_id=case.team_id, feature="eval-judge")
    result = limited_chat(model=model.name, messages=[{"role": "user", "content": judge_prompt(case, params)}],
                          context=context, temperature=params.get("temperature", 0), max_tokens=200)
    score, reason = parse_judgement(result.text, scale_min, scale_max)
    raw = None if score is None else scale_min + score * (scale_max - scale_min)
    return Score(score, reason, details={"raw_score": raw, "judge": model.name})


def _check(params):
    problems = []
    if not isinstance(params.get("model"), str) or not params.get("model"):
        problems.append("model: the judge model's name in the catalog.")
    low, high = params.get("scale_min", 1), params.get("scale_max", 5)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)) or low >= high:
        problems.append("scale_min / scale_max: numbers with scale_min < scale_max.")
    for key in ("rubric", "criteria"):
        if key in params and not isinstance(params[key], str):
            problems.append(f"{key}: text.")
    if isinstance(params.get("rubric"), str) and params["rubric"] and "{output}" not in params["rubric"]:
        problems.append("rubric: must contain {output} (where the answer goes).")
    return problems


def register() -> None:
    """Called by the registry's loader (apps.evals.evaluators)."""
    register_evaluator("llm_judge", "LLM judge (rubric)", llm_judge, family=FAMILY, default_threshold=0.75,
                       check_params=_check, calls_models=True,
                       example={"model": "gpt-4o-mini", "criteria": DEFAULT_CRITERIA, "scale_min": 1,
                                "scale_max": 5})
