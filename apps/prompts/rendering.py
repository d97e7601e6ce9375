"""Rendering a saved version: resolve its includes (the reference graph, with cycle detection), check the
variables against what the templates use and the version's schema, then render in the sandbox.

Every problem comes back in one RenderFailed listing each missing or extra variable, each schema
violation and each template error with its line, so the API can answer 422 naming them all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from jsonschema import Draft202012Validator

from apps.prompts.content import schema_properties, version_parts
from apps.prompts.models import PromptKind, PromptVersion
from apps.prompts.templating import (
    MAX_INCLUDE_DEPTH,
    IncludeTarget,
    Problem,
    Reference,
    RenderFailed,
    inline_includes,
    render_parts,
)


def version_where(version: PromptVersion) -> str:
    return f"{version.prompt.name} v{version.number}"


def lookup_reference(ref: Reference) -> PromptVersion | None:
    versions = PromptVersion.objects.select_related("prompt")
    if ref.version is not None:
        return versions.filter(prompt__name=ref.name, number=ref.version).first()
    return versions.filter(prompt__name=ref.name, labels__name=ref.effective_label).first()


def stored_references(version: PromptVersion) -> list[Reference]:
    return [Reference(r.to_prompt.name, r.label or None, r.version_number)
            for r in version.references.select_related("to_prompt").order_by("id")]


@dataclass
class ResolvedInclude:
    ref: Reference
    version: PromptVersion
    included_from: str


@dataclass
class IncludeGraph:
    targets: dict[tuple, IncludeTarget] = field(default_factory=dict)
    resolved: list[ResolvedInclude] = field(default_factory=list)
    versions: dict[tuple, PromptVersion] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def variables(self) -> set[str]:
        return {v for version in self.versions.values() for v in version.variables}


def include_graph(version: PromptVersion, references: list[Reference] | None = None) -> IncludeGraph:
    """Resolve what `version` includes, transitively, as the labels point now. Cycles become problems."""
    graph = IncludeGraph()
    root = version_where(version)

    def visit(refs: list[Reference], path: list[str], where: str) -> None:
        for ref in refs:
            target = graph.versions.get(ref.key) or lookup_reference(ref)
            if target is None:
                exists = PromptVersion.objects.filter(prompt__name=ref.name).exists()
                reason = (f"{ref.name!r} has no {'version ' + str(ref.version) if ref.version else repr(ref.effective_label) + ' label'}"
                          if exists else f"there is no prompt named {ref.name!r}")
                graph.problems.append(Problem("include", f"{where}: include_prompt {ref.name!r}: {reason}",
                                              where=where))
                continue
            ident = f"{target.prompt.name} v{target.number}"
            if ident in path or target.prompt.name in {p.rsplit(' v', 1)[0] for p in path}:
                graph.problems.append(Problem("include", f"include cycle: {' → '.join([*path, ident])}",
                                              where=where))
                continue
            if len(path) >= MAX_INCLUDE_DEPTH:
                graph.problems.append(Problem("include", f"includes nest deeper than {MAX_INCLUDE_DEPTH}: "
                                                         f"{' → '.join([*path, ident])}", where=where))
                continue
            if target.prompt.kind != PromptKind.TEXT:
                graph.problems.append(Problem("include", f"{where}: {ref.name!r} is a chat prompt; only text "
                                                         "prompts can be included", where=where))
                continue
            first_visit = ref.key not in graph.versions
            graph.versions[ref.key] = target
            graph.targets[ref.key] = IncludeTarget(target.prompt.name, target.number, target.template, ident)
            graph.resolved.append(ResolvedInclude(ref, target, where))
            if first_visit:
                visit(stored_references(target), [*path, ident], ident)

    visit(references if references is not None else stored_references(version), [root], root)
    return graph


@dataclass
class Rendered:
    kind: str
    text: str | None = None
    messages: list[dict] | None = None
    variables_used: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        if self.kind == PromptKind.CHAT:
            return {"type": self.kind, "messages": self.messages}
        return {"type": self.kind, "text": self.text}

    def as_messages(self) -> list[dict]:
        """What a chat model is sent: a text prompt becomes one user message."""
        return self.messages if self.kind == PromptKind.CHAT else [{"role": "user", "content": self.text}]


def expected_variables(version: PromptVersion, graph: IncludeGraph) -> tuple[set[str], set[str]]:
    """(required, optional): optional are the ones the schema declares but does not require."""
    return _expected(set(version.variables) | graph.variables, version.variables_schema)


def _expected(used: set[str], schema: dict | None) -> tuple[set[str], set[str]]:
    if not schema:
        return used, set()
    declared = schema_properties(schema)
    required = set(schema.get("required", []) or [])
    optional = declared - required
    return used - optional, optional | (declared - used)


def check_variables(version: PromptVersion, graph: IncludeGraph, variables, *, allow_extra: bool = False
                    ) -> list[Problem]:
    return _variable_problems(set(version.variables) | graph.variables, version.variables_schema, variables,
                              allow_extra=allow_extra)


def _variable_problems(used: set[str], schema: dict | None, variables, *, allow_extra: bool) -> list[Problem]:
    if not isinstance(variables, dict):
        return [Problem("invalid_variable", "Send the variables as a JSON object of name → value.")]
    required, optional = _expected(used, schema)
    problems = []
    for name in sorted(required - set(variables)):
        problems.append(Problem("missing_variable", f"missing variable {name!r}: the template uses it and no value "
                                                     "was given", variable=name))
    if not allow_extra:
        known = required | optional
        for name in sorted(set(variables) - known):
            expected = ", ".join(sorted(known)) or "none"
            problems.append(Problem("extra_variable", f"unexpected variable {name!r}: the template does not use it "
                                                       f"(it uses: {expected})", variable=name))
    if schema:
        validator = Draft202012Validator(schema)
        for error in sorted(validator.iter_errors(variables), key=lambda e: list(e.absolute_path)):
            if error.validator == "required":
                continue  # reported above as missing, by name
            if error.validator == "additionalProperties" and allow_extra:
                continue
            path = list(error.absolute_path)
            name = str(path[0]) if path else None
            where = "/".join(str(p) for p in path)
            problems.append(Problem("invalid_variable",
                                    f"variable {where!r}: {error.message}" if where else error.message,
                                    variable=name))
    return problems


def render_version(version: PromptVersion, variables, *, allow_extra: bool = False) -> Rendered:
    """Render a saved version with `variables`. Raises RenderFailed naming every problem."""
    graph = include_graph(version)
    if graph.problems:
        raise RenderFailed(graph.problems)
    problems = check_variables(version, graph, variables, allow_extra=allow_extra)
    if problems:
        raise RenderFailed(problems)
    where = version_where(version)
    parts = version_parts(version.prompt.kind, version.template, version.messages, where)
    # Optional variables the caller left out are still passed as undefined-but-testable (`is defined`).
    outputs = render_parts(parts, dict(variables), graph.targets, where)
    used = sorted(set(version.variables) | graph.variables)
    if version.prompt.kind == PromptKind.CHAT:
        messages = [{"role": part.role, "content": text} for part, text in zip(parts, outputs, strict=True)]
        return Rendered(PromptKind.CHAT, messages=messages, variables_used=used)
    return Rendered(PromptKind.TEXT, text=outputs[0], variables_used=used)


def render_payload(payload: dict, variables, *, allow_extra: bool = False) -> Rendered:
    """Render a resolve payload (apps/prompts/resolve.py: includes already inlined) with `variables`, with no
    database read: what a caller holding a cached payload (the gateway's prompt by reference) renders from.
    Raises RenderFailed naming every problem, like render_version."""
    problems = _variable_problems(set(payload["variables"]), payload.get("variables_schema"), variables,
                                  allow_extra=allow_extra)
    if problems:
        raise RenderFailed(problems)
    where = f"{payload['name']} v{payload['version']}"
    parts = version_parts(payload["type"], payload.get("template", ""), payload.get("messages") or [], where)
    outputs = render_parts(parts, dict(variables), {}, where)
    if payload["type"] == PromptKind.CHAT:
        messages = [{"role": part.role, "content": text} for part, text in zip(parts, outputs, strict=True)]
        return Rendered(PromptKind.CHAT, messages=messages, variables_used=list(payload["variables"]))
    return Rendered(PromptKind.TEXT, text=outputs[0], variables_used=list(payload["variables"]))


def inlined_content(version: PromptVersion, graph: IncludeGraph) -> dict:
    """The version's template with every include replaced by the included text: ready to render anywhere."""

    def expand(source: str, depth: int = 0) -> str:
        def replace(ref: Reference) -> str:
            target = graph.versions.get(ref.key)
            if target is None or depth >= MAX_INCLUDE_DEPTH:
                return ""
            return expand(target.template, depth + 1)

        return inline_includes(source, replace)

    if version.prompt.kind == PromptKind.CHAT:
        return {"messages": [{"role": m["role"], "content": expand(m["content"])} for m in version.messages]}
    return {"template": expand(version.template)}


def render_problems(exc: RenderFailed) -> list[dict]:
    return [p.as_dict() for p in exc.problems]


def coerce_variables(variables: dict, schema: dict | None) -> dict:
    """Form inputs are strings: JSON-decode values whose schema asks for another type (numbers, lists…)."""
    props = (schema or {}).get("properties", {}) if isinstance(schema, dict) else {}
    out = {}
    for key, value in variables.items():
        wanted = (props.get(key) or {}).get("type")
        if wanted and wanted != "string":
            try:
                out[key] = json.loads(value)
                continue
            except (TypeError, ValueError):
                pass
        out[key] = value
    return out
