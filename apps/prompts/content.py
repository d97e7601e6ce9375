"""What a version holds, checked before it is saved: the template or messages, the variables schema and the
model config. Pure functions (no database); errors are ValidationError keyed by the form field."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from apps.prompts.models import PromptKind
from apps.prompts.templating import Analysis, Part, Problem, Reference, analyse, find_include_tags

ROLES = ("system", "developer", "user", "assistant")
MAX_TEMPLATE_CHARS = 100_000
MAX_MESSAGES = 50
CONFIG_KEYS = ("model", "temperature", "max_tokens", "top_p", "stop", "response_format", "tools", "cache")
MAX_CACHE_TTL_SECONDS = 7 * 86_400
RESPONSE_FORMATS = ("text", "json_object", "json_schema")


@dataclass
class Draft:
    """The content of a version to be: exactly one of template (text) or messages (chat) is used."""

    kind: str
    template: str = ""
    messages: list[dict] = field(default_factory=list)
    variables_schema: dict | None = None
    config: dict = field(default_factory=dict)

    def canonical(self) -> dict:
        return {
            "kind": self.kind,
            "template": self.template if self.kind == PromptKind.TEXT else "",
            "messages": self.messages if self.kind == PromptKind.CHAT else [],
            "variables_schema": self.variables_schema,
            "config": self.config,
        }

    def content_hash(self) -> str:
        body = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(body.encode()).hexdigest()


def version_parts(kind: str, template: str, messages: list[dict], where: str) -> list[Part]:
    if kind == PromptKind.CHAT:
        return [Part(str(m.get("content", "")), f"{where}, message {i} ({m.get('role')})", m.get("role"))
                for i, m in enumerate(messages, start=1)]
    return [Part(template, where)]


@dataclass
class Checked:
    draft: Draft
    variables: list[str]
    references: list[Reference]
    analyses: list[Analysis]


def check_draft(draft: Draft, where: str = "this version") -> Checked:
    """Validate a draft; raise ValidationError({field: [messages]}) naming each problem, line by line."""
    errors: dict[str, list[str]] = {}

    def add(field_name: str, message: str) -> None:
        errors.setdefault(field_name, []).append(message)

    if draft.kind not in PromptKind.values:
        add("kind", f"Unknown prompt type {draft.kind!r}: choose text or chat.")
        raise ValidationError(errors)
    if draft.kind == PromptKind.TEXT:
        if not isinstance(draft.template, str) or not draft.template.strip():
            add("template", "Write the template: it is empty.")
        elif len(draft.template) > MAX_TEMPLATE_CHARS:
            add("template", f"Keep the template under {MAX_TEMPLATE_CHARS:,} characters.")
        field_name = "template"
    else:
        field_name = "messages"
        _check_messages(draft.messages, add)
    if errors:
        raise ValidationError(errors)
    analyses, variables, references = [], set(), []
    for part in version_parts(draft.kind, draft.template, draft.messages, where):
        analysis = analyse(part.source, part.where)
        analyses.append(analysis)
        for problem in analysis.problems:
            add(field_name, problem.message)
        if analysis.ok:
            tagged = {ref.key for ref in find_include_tags(part.source)}
            if tagged != {ref.key for ref in analysis.references}:
                add(field_name, f"{part.where}: write include_prompt as {{% include_prompt \"name\" %}}, "
                                '{% include_prompt "name" label="staging" %} or {% include_prompt "name" version=3 %}.')
        variables |= analysis.variables
        references += [r for r in analysis.references if r.key not in {x.key for x in references}]
    for message in _schema_problems(draft.variables_schema):
        add("variables_schema", message)
    try:
        draft.config = normalise_config(draft.config)
    except ValidationError as exc:
        for message in exc.messages:
            add("config", message)
    if errors:
        raise ValidationError(errors)
    return Checked(draft, sorted(variables), references, analyses)


def _check_messages(messages, add) -> None:
    if not isinstance(messages, list) or not messages:
        add("messages", "A chat prompt needs at least one message.")
        return
    if len(messages) > MAX_MESSAGES:
        add("messages", f"Use at most {MAX_MESSAGES} messages.")
    for i, message in enumerate(messages, start=1):
        if not isinstance(message, dict):
            add("messages", f"Message {i}: give a role and a content.")
            continue
        unknown = set(message) - {"role", "content"}
        if unknown:
            add("messages", f"Message {i}: unknown field(s) {', '.join(sorted(unknown))}; use role and content.")
        if message.get("role") not in ROLES:
            add("messages", f"Message {i}: role must be one of {', '.join(ROLES)}, not {message.get('role')!r}.")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            add("messages", f"Message {i} ({message.get('role')}): the content is empty.")
        elif len(content) > MAX_TEMPLATE_CHARS:
            add("messages", f"Message {i}: keep the content under {MAX_TEMPLATE_CHARS:,} characters.")


def _schema_problems(schema) -> list[str]:
    if schema is None:
        return []
    if not isinstance(schema, dict):
        return ["The variables schema must be a JSON object, e.g. {\"type\": \"object\", \"properties\": {…}}."]
    if schema.get("type", "object") != "object":
        return ["The variables schema describes the variables as one object: its type must be \"object\"."]
    if not isinstance(schema.get("properties", {}), dict):
        return ["The schema's \"properties\" must be an object mapping each variable to its schema."]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        path = "/".join(str(p) for p in exc.absolute_path)
        return [f"Not a valid JSON schema{f' at {path}' if path else ''}: {exc.message}"]
    return []


def schema_properties(schema: dict | None) -> set[str]:
    return set((schema or {}).get("properties", {}) or {})


def normalise_config(config) -> dict:
    """The model config in its canonical form; ValidationError naming each bad key."""
    if config in (None, ""):
        return {}
    if not isinstance(config, dict):
        raise ValidationError("The model config must be an object of model, temperature, max_tokens, top_p, "
                              "stop, response_format and tools.")
    problems, out = [], {}
    for key in config:
        if key not in CONFIG_KEYS:
            problems.append(f"config.{key}: unknown setting; use {', '.join(CONFIG_KEYS)}.")
    model = config.get("model")
    if model not in (None, ""):
        if not isinstance(model, str) or len(model) > 120:
            problems.append("config.model: give a model name from the catalog.")
        else:
            out["model"] = model.strip()
    for key, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        value = config.get(key)
        if value in (None, ""):
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            problems.append(f"config.{key}: must be a number from {low} to {high}.")
        else:
            out[key] = value
    max_tokens = config.get("max_tokens")
    if max_tokens not in (None, ""):
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= 200_000:
            problems.append("config.max_tokens: must be a whole number from 1 to 200000.")
        else:
            out["max_tokens"] = max_tokens
    stop = config.get("stop")
    if stop not in (None, "", []):
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > 4:
            problems.append("config.stop: give up to 4 stop strings.")
        else:
            out["stop"] = stop
    response_format = config.get("response_format")
    if response_format not in (None, "", "text", {"type": "text"}):
        normalised, problem = _response_format(response_format)
        if problem:
            problems.append(problem)
        else:
            out["response_format"] = normalised
    tools = config.get("tools")
    if tools not in (None, "", []):
        tool_problems = _tool_problems(tools)
        problems += tool_problems
        if not tool_problems:
            out["tools"] = tools
    cache, problem = _cache(config.get("cache"))
    if problem:
        problems.append(problem)
    elif cache:
        out["cache"] = cache
    if problems:
        raise ValidationError(problems)
    return out


def _cache(value) -> tuple[bool | dict | None, str | None]:
    """The response cache opt-in (apps/llm/cache.py): true, or {"ttl_seconds": N, "sampled": bool}."""
    if value in (None, False, "", {}):
        return None, None
    if value is True:
        return True, None
    problem = (f'config.cache: true, or {{"ttl_seconds": 1 to {MAX_CACHE_TTL_SECONDS}, "sampled": true or '
               'false}.')
    if not isinstance(value, dict) or set(value) - {"ttl_seconds", "sampled"}:
        return None, problem
    ttl, sampled = value.get("ttl_seconds"), value.get("sampled", False)
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_CACHE_TTL_SECONDS):
        return None, problem
    if not isinstance(sampled, bool):
        return None, problem
    return {k: v for k, v in (("ttl_seconds", ttl), ("sampled", sampled)) if v not in (None, False)} or True, None


def _response_format(value) -> tuple[dict | None, str | None]:
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict) or value.get("type") not in RESPONSE_FORMATS:
        return None, "config.response_format: use text, json_object or {\"type\": \"json_schema\", \"json_schema\": …}."
    if value["type"] == "json_object":
        return {"type": "json_object"}, None
    spec = value.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
        return None, ("config.response_format: a json_schema format needs "
                      "{\"json_schema\": {\"name\": …, \"schema\": {…}}}.")
    try:
        Draft202012Validator.check_schema(spec["schema"])
    except SchemaError as exc:
        return None, f"config.response_format: the JSON schema is not valid: {exc.message}"
    return {"type": "json_schema", "json_schema": {"name": str(spec.get("name") or "response"),
                                                   "schema": spec["schema"],
                                                   **({"strict": bool(spec["strict"])} if "strict" in spec else {})}}, None


def _tool_problems(tools) -> list[str]:
    if not isinstance(tools, list):
        return ["config.tools: give a list of tools like {\"type\": \"function\", \"function\": {\"name\": …}}."]
    problems = []
    for i, tool in enumerate(tools, start=1):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
            problems.append(f"config.tools[{i}]: use {{\"type\": \"function\", \"function\": {{\"name\": …}}}}.")
            continue
        if not isinstance(function.get("name"), str) or not function["name"]:
            problems.append(f"config.tools[{i}]: the function needs a name.")
        parameters = function.get("parameters")
        if parameters is not None:
            try:
                Draft202012Validator.check_schema(parameters)
            except SchemaError as exc:
                problems.append(f"config.tools[{i}] ({function.get('name')}): parameters is not a valid JSON "
                                f"schema: {exc.message}")
    return problems


def problems_as_list(problems: list[Problem]) -> list[dict]:
    return [p.as_dict() for p in problems]
