"""Conditions that check themselves: a registry of predicates over portal data.

    register_predicate(key, label, params_schema, evaluate_fn)

`evaluate_fn(use_case, params) -> Evaluation`. Parameters (thresholds included) are validated and locked
when a condition is set. Built-ins read other apps only through those apps' selectors; when the data cannot
be read (object gone, a check that raises) the evaluation is "unknown" (passed=None): it is recorded, never
suspends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError

from apps.costs.selectors import active_monthly_budget_amounts
from apps.evals.selectors import latest_metric
from apps.prompts.selectors import production_version
from apps.rag.selectors import collection_by_pk, pii_findings_total
from apps.reviews.rules import DATA_CLASS_RANK


@dataclass(frozen=True)
class Evaluation:
    passed: bool | None  # None: the data could not be read (app missing, object gone)
    value: Any = None
    detail: str = ""


@dataclass(frozen=True)
class Predicate:
    key: str
    label: str
    params_schema: dict  # {name: {"type": "number"|"string"|"strings", "label": str, "min"?: n}}
    evaluate: Callable[[Any, dict], Evaluation]


_predicates: dict[str, Predicate] = {}


def register_predicate(key: str, label: str, params_schema: dict, evaluate_fn) -> None:
    _predicates[key] = Predicate(key, label, params_schema, evaluate_fn)


def predicate(key: str) -> Predicate | None:
    return _predicates.get(key)


def predicates() -> list[Predicate]:
    return sorted(_predicates.values(), key=lambda p: p.label)


def clean_params(key: str, params: dict) -> dict:
    """Validate and normalise a predicate's parameters; raise ValidationError naming the bad one."""
    pred = predicate(key)
    if pred is None:
        raise ValidationError({"predicate": [f"Unknown check {key!r}."]})
    if not isinstance(params, dict):
        raise ValidationError({"params": ["Parameters must be an object."]})
    cleaned, errors = {}, {}
    for name, spec in pred.params_schema.items():
        raw = params.get(name)
        if raw in (None, "", []):
            errors[name] = [f"{spec.get('label', name)} is required."]
            continue
        if spec["type"] == "number":
            try:
                number = Decimal(str(raw))
            except (InvalidOperation, ValueError):
                errors[name] = [f"{spec.get('label', name)} must be a number."]
                continue
            if not number.is_finite() or ("min" in spec and number < Decimal(str(spec["min"]))) or (
                    "max" in spec and number > Decimal(str(spec["max"]))):
                errors[name] = [f"{spec.get('label', name)} must be between {spec.get('min', '-∞')} and "
                                f"{spec.get('max', '∞')}."]
                continue
            cleaned[name] = float(number)
        elif spec["type"] == "strings":
            values = raw if isinstance(raw, list) else [v.strip() for v in str(raw).split(",")]
            cleaned[name] = [str(v).strip() for v in values if str(v).strip()]
        else:
            cleaned[name] = str(raw).strip()[:200]
    unknown = set(params) - set(pred.params_schema)
    for name in sorted(unknown):
        errors[name] = [f"Unknown parameter {name!r} for {pred.label}."]
    if errors:
        raise ValidationError(errors)
    return cleaned


def evaluate(key: str, use_case, params: dict) -> Evaluation:
    pred = predicate(key)
    if pred is None:
        return Evaluation(None, None, f"The check {key!r} is no longer registered.")
    try:
        return pred.evaluate(use_case, params)
    except Exception as exc:  # noqa: BLE001 - a broken check reads as "unknown", and is shown
        return Evaluation(None, None, f"The check failed to run: {type(exc).__name__}: {exc}"[:500])


# --- built-ins --------------------------------------------------------------------------------------------


def _budget_cap(use_case, params) -> Evaluation:
    """A monthly budget for the use case's team exists and is at most the cap."""
    amounts = active_monthly_budget_amounts(team_id=use_case.team_id)
    cap = Decimal(str(params["max_usd"]))
    if not amounts:
        return Evaluation(False, None, "No active monthly budget is set for the team.")
    amount = min(amounts)
    ok = amount <= cap
    return Evaluation(ok, float(amount), f"Monthly budget ${amount:,.2f} {'≤' if ok else '>'} cap ${cap:,.2f}.")


def _production_model(use_case, params) -> Evaluation:
    """The prompt's production version uses one of the allowed models."""
    version = production_version(name=params["prompt"])
    if version is None:
        return Evaluation(False, None, f"{params['prompt']} has no production version.")
    model = (version.config or {}).get("model", "")
    ok = model in params["allowed_models"]
    return Evaluation(ok, model, f"Production v{version.number} uses {model or 'the default model'}"
                      f" ({'allowed' if ok else 'not in ' + ', '.join(params['allowed_models'])}).")


def _eval_metric(use_case, params) -> Evaluation:
    value = latest_metric(prompt=params["prompt"], dataset=params["dataset"], metric=params["metric"])
    if value is None:
        return Evaluation(False, None, f"No finished eval run of {params['prompt']} on {params['dataset']} "
                                       f"reports {params['metric']} (evals).")
    ok = float(value) + 1e-12 >= params["min"]
    return Evaluation(ok, float(value), f"{params['metric']} = {float(value):.3f} "
                      f"({'≥' if ok else '<'} {params['min']}) in evals.")


def _collection(params):
    return collection_by_pk(pk=int(params["collection_id"]))


def _collection_data_class(use_case, params) -> Evaluation:
    """The collection's data class is no more sensitive than the one allowed."""
    collection = _collection(params)
    if collection is None:
        return Evaluation(False, None, "The collection no longer exists.")
    allowed = params["max_class"]
    if allowed not in DATA_CLASS_RANK:
        return Evaluation(None, None, f"Unknown data class {allowed!r}.")
    ok = DATA_CLASS_RANK.get(collection.data_class, 99) <= DATA_CLASS_RANK[allowed]
    return Evaluation(ok, collection.data_class, f"{collection.name} holds {collection.data_class} data "
                      f"({'within' if ok else 'above'} {allowed}).")


def _collection_no_pii(use_case, params) -> Evaluation:
    """No document of the collection has PII findings (i.e. redaction happened before indexing)."""
    collection = _collection(params)
    if collection is None:
        return Evaluation(False, None, "The collection no longer exists.")
    findings = pii_findings_total(collection)
    ok = findings == 0
    return Evaluation(ok, findings, f"{collection.name}: {findings} PII finding{'s' if findings != 1 else ''} "
                      "in its documents.")


def register_builtins() -> None:
    register_predicate("budget_cap", "Monthly budget set at or below a cap",
                       {"max_usd": {"type": "number", "label": "Cap (USD)", "min": 0}}, _budget_cap)
    register_predicate("production_model", "Production version uses an allowed model",
                       {"prompt": {"type": "string", "label": "Prompt name"},
                        "allowed_models": {"type": "strings", "label": "Allowed models (comma-separated)"}},
                       _production_model)
    register_predicate("eval_metric", "Eval run of a prompt on a dataset meets a threshold",
                       {"prompt": {"type": "string", "label": "Prompt name"},
                        "dataset": {"type": "string", "label": "Dataset"},
                        "metric": {"type": "string", "label": "Metric (e.g. groundedness)"},
                        "min": {"type": "number", "label": "Minimum", "min": 0, "max": 1}}, _eval_metric)
    register_predicate("collection_data_class", "Collection data class at most",
                       {"collection_id": {"type": "number", "label": "Collection id", "min": 1},
                        "max_class": {"type": "string", "label": "Most sensitive class allowed "
                                                                 "(public, internal, confidential, pii)"}},
                       _collection_data_class)
    register_predicate("collection_no_pii", "No PII found in a collection's documents (redacted before indexing)",
                       {"collection_id": {"type": "number", "label": "Collection id", "min": 1}},
                       _collection_no_pii)
