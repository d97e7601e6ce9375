"""What an eval run evaluates: registered targets. Built in: `prompt_version` (render a prompt version with
the item's inputs, call the chat model), registered by apps.evals.hooks. The RAG app registers `rag_collection`
at start-up:

    from apps.evals.targets import TargetDescription, TargetOutput, register_target
    register_target("rag_collection", "RAG collection configuration", run_fn, describe_fn, prepare_fn=prepare)

- `describe_fn(ref: dict) -> TargetDescription`: validate the reference (raise ValidationError) and say what
  it is: label, fingerprint (what a gate matches on), owning team, default model config.
- `prepare_fn(run) -> state` (optional): once per worker task, e.g. load and compile the prompt.
- `check_fn(ref, item, input_map)` (optional): before a run is queued, try one item without calling a model;
  raise TargetError when no item could succeed (e.g. the input map leaves a variable unset).
- `run_fn(run, item, repetition, state) -> TargetOutput`: produce one output. Raise apps.llm.errors.LlmError
  on model failures (retryable ones are retried with backoff by the runner), TargetError for item problems.
  Hold a provider slot around model calls with `limited_chat` (or apps.evals.limiter.provider_slot).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from apps.costs.models import Source
from apps.costs.services import UsageContext
from apps.evals.limiter import provider_slot, slot_ttl
from apps.llm.cache import CachePolicy
from apps.llm.calls import chat, resolve_model
from apps.llm.models import Model, ModelKind
from apps.prompts.content import version_parts
from apps.prompts.models import PromptKind, PromptVersion
from apps.prompts.rendering import check_variables, include_graph, version_where
from apps.prompts.templating import RenderFailed, render_parts


class TargetError(Exception):
    """The item cannot be run against this target (e.g. a missing variable). Not retried."""


@dataclass
class TargetDescription:
    label: str
    fingerprint: str
    team_id: int
    default_model: str
    default_config: dict = field(default_factory=dict)
    prompt_id: int | None = None
    prompt_version_id: int | None = None
    variables: list[str] = field(default_factory=list)


@dataclass
class TargetOutput:
    output: str
    latency_ms: int | None = None
    cost: Decimal | None = None
    unpriced: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    request_id: str = ""
    contexts: list[str] | None = None  # e.g. what a RAG target retrieved: evaluators judge against these


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    run_fn: Callable[..., TargetOutput]
    describe_fn: Callable[[dict], TargetDescription]
    prepare_fn: Callable[[Any], Any] | None = None
    check_fn: Callable[[dict, Any, dict], None] | None = None


_targets: dict[str, Target] = {}


def register_target(key: str, label: str, run_fn, describe_fn, *, prepare_fn=None, check_fn=None) -> None:
    _targets[key] = Target(key, label, run_fn, describe_fn, prepare_fn, check_fn)


def get_target(key: str) -> Target:
    target = _targets.get(key)
    if target is None:
        raise ValidationError({"target": f"Unknown target kind {key!r}; known: {', '.join(sorted(_targets))}."})
    return target


def targets() -> list[Target]:
    return sorted(_targets.values(), key=lambda t: t.key)


# --- model calls with a provider slot -----------------------------------------------------------------------

CALL_OPTIONS = ("temperature", "max_tokens", "response_format", "tools", "cache")


def limited_chat(*, model, messages: list[dict], context, **options):
    """apps.llm.calls.chat while holding one of the model's provider slots (the shared concurrency limit).
    `model`: a name, or a catalog Model already resolved (saves a query per call)."""
    resolved = model if isinstance(model, Model) else resolve_model(model, ModelKind.CHAT)
    with provider_slot(resolved.provider.name, ttl_seconds=slot_ttl(resolved.provider)):
        return chat(model=resolved, messages=messages, context=context,
                    cache=CachePolicy.from_config(options.get("cache")),  # the version's opt-in (llm/cache.py)
                    **{k: v for k, v in options.items() if k in CALL_OPTIONS and k != "cache" and v is not None})


# --- the built-in target: a prompt version ------------------------------------------------------------------

def _version(ref: dict):
    version_id = ref.get("version_id") if isinstance(ref, dict) else None
    version = (PromptVersion.objects.select_related("prompt", "prompt__team").filter(pk=version_id).first()
               if isinstance(version_id, int) else None)
    if version is None:
        raise ValidationError({"target": "Choose a prompt version to evaluate."})
    return version


def describe_prompt_version(ref: dict) -> TargetDescription:
    version = _version(ref)
    config = dict(version.config or {})
    model = config.pop("model", "") or settings.PORTAL_DEFAULT_CHAT_MODEL
    config = {k: v for k, v in config.items() if k in CALL_OPTIONS}
    graph = include_graph(version)
    return TargetDescription(
        label=f"{version.prompt.name} v{version.number}", fingerprint=version.content_hash,
        team_id=version.prompt.team_id, default_model=model, default_config=config, prompt_id=version.prompt_id,
        prompt_version_id=version.pk, variables=sorted(set(version.variables) | graph.variables),
    )


@dataclass
class PreparedPrompt:
    version: Any
    graph: Any
    parts: list
    where: str
    model: Any = None  # the run's chat model, resolved once per worker task


def prepare_prompt_version(run) -> PreparedPrompt:
    version = _version(run.target_ref)
    graph = include_graph(version)
    where = version_where(version)
    return PreparedPrompt(version, graph, version_parts(version.prompt.kind, version.template, version.messages,
                                                        where), where, resolve_model(run.model, ModelKind.CHAT))


def item_variables(item, input_map: dict) -> dict:
    """The item's inputs, renamed by the run's input map; `contexts` and a numbered `context` block are added
    from the item's passages when the inputs do not carry them."""
    variables = dict(item.inputs or {})
    if item.contexts:
        variables.setdefault("contexts", list(item.contexts))
        variables.setdefault("context", "\n".join(f"[{i}] {c}" for i, c in enumerate(item.contexts, start=1)))
    source = dict(variables)
    for variable, key in (input_map or {}).items():
        if key in source:
            variables[variable] = source[key]
    return variables


def item_fields(item) -> list[str]:
    """The names an input map may point at for this item: its inputs, plus `context`/`contexts` from passages."""
    return sorted(item_variables(item, {}))


def input_map_suggest(variables, fields, known: dict | None = None) -> dict:
    """Prompt variable → item field for the variables the items do not carry under the same name.

    `known` (e.g. the prompt's gate mapping for this dataset) wins where it points at an existing field; the
    rest are paired with the fields no variable uses, text `context` before the `contexts` list."""
    fields = list(fields)
    mapping = {v: f for v, f in (known or {}).items() if v in variables and f in fields}
    free_vars = [v for v in variables if v not in fields and v not in mapping]
    free_fields = [f for f in fields if f not in variables and f not in mapping.values()]
    if "context" in free_fields and "contexts" in free_fields:
        free_fields.remove("contexts")
    free_fields.sort(key=lambda f: (f != "context", fields.index(f)))
    for variable, field_name in zip(free_vars, free_fields, strict=False):
        mapping[variable] = field_name
    return mapping


def check_prompt_version(ref: dict, item, input_map: dict) -> None:
    """Render the version with one item (no model call): a missing variable here fails every item."""
    version = _version(ref)
    where = version_where(version)
    prepared = PreparedPrompt(version, include_graph(version),
                              version_parts(version.prompt.kind, version.template, version.messages, where), where)
    render_prepared(prepared, item_variables(item, input_map))


def render_prepared(prepared: PreparedPrompt, variables: dict) -> list[dict]:
    if prepared.graph.problems:
        raise TargetError("; ".join(p.message for p in prepared.graph.problems))
    problems = check_variables(prepared.version, prepared.graph, variables, allow_extra=True)
    if problems:
        raise TargetError("; ".join(p.message for p in problems))
    try:
        outputs = render_parts(prepared.parts, variables, prepared.graph.targets, prepared.where)
    except RenderFailed as exc:
        raise TargetError("; ".join(p.message for p in exc.problems))
    if prepared.version.prompt.kind == PromptKind.CHAT:
        return [{"role": part.role, "content": text} for part, text in zip(prepared.parts, outputs, strict=True)]
    return [{"role": "user", "content": outputs[0]}]


def run_prompt_version(run, item, repetition: int, prepared: PreparedPrompt) -> TargetOutput:
    messages = render_prepared(prepared, item_variables(item, run.input_map))
    context = UsageContext(source=Source.EVAL, team_id=run.team_id, user_id=run.created_by_id,
                           feature=f"eval-run-{run.pk}", prompt_name=prepared.version.prompt.name,
                           prompt_version=prepared.version.number)
    started = time.perf_counter()
    result = limited_chat(model=prepared.model or run.model, messages=messages, context=context,
                          **(run.model_config or {}))
    latency = result.latency_ms if result.latency_ms is not None else round((time.perf_counter() - started) * 1000)
    return TargetOutput(output=result.text, latency_ms=latency, cost=result.cost, unpriced=result.cost is None,
                        input_tokens=result.usage.input_tokens, output_tokens=result.usage.output_tokens,
                        request_id=result.request_id or "")


def register_builtin_targets() -> None:
    """The built-in target; called by apps.evals.hooks.register() at start-up."""
    register_target("prompt_version", "Prompt version", run_prompt_version, describe_prompt_version,
                    prepare_fn=prepare_prompt_version, check_fn=check_prompt_version)
