"""Prompt templates: Jinja2 in an immutable sandbox with StrictUndefined, plus `{% include_prompt %}`.

Nothing here touches the database. `analyse()` checks a template as it is written (syntax, sandbox, the
variables it uses, the prompts it includes); `render_parts()` renders the parts of a version whose includes
the caller has already resolved (see rendering.py), so every problem comes back as a `Problem` naming the
variable or the line, never as an exception a view would turn into a 500.

Include syntax, resolved at render time with cycle detection:
    {% include_prompt "shared/tone" %}                  -> the production version
    {% include_prompt "shared/tone" label="staging" %}
    {% include_prompt "shared/tone" version=3 %}
"""

from __future__ import annotations

import contextvars
import functools
import re
import traceback
from dataclasses import dataclass, field

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

DEFAULT_INCLUDE_LABEL = "production"
MAX_INCLUDE_DEPTH = 8
MAX_OUTPUT_CHARS = 200_000


@dataclass(frozen=True)
class Reference:
    name: str
    label: str | None = None
    version: int | None = None

    @property
    def selector(self) -> str:
        return f"version={self.version}" if self.version is not None else f'label="{self.effective_label}"'

    @property
    def effective_label(self) -> str:
        return self.label or DEFAULT_INCLUDE_LABEL

    @property
    def key(self) -> tuple:
        return (self.name, None if self.version is not None else self.effective_label, self.version)


@dataclass
class Problem:
    """One thing wrong with a template or a render, said so a person can fix it."""

    kind: str  # syntax | sandbox | missing_variable | extra_variable | invalid_variable | undefined | include | runtime
    message: str
    variable: str | None = None
    line: int | None = None
    where: str | None = None  # which template: "support/x v3", "message 2 (user)", an included prompt

    def as_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "variable": self.variable, "line": self.line,
                "where": self.where}

    def __str__(self) -> str:
        return self.message


class RenderFailed(Exception):
    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


# --- the environment -------------------------------------------------------------------------------------

_session: contextvars.ContextVar[RenderSession | None] = contextvars.ContextVar("prompt_render", default=None)


class IncludePromptExtension(Extension):
    tags = {"include_prompt"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        name_node = parser.parse_expression()
        if not isinstance(name_node, nodes.Const) or not isinstance(name_node.value, str):
            parser.fail('include_prompt needs the prompt name as a quoted string, e.g. '
                        '{% include_prompt "shared/tone" %}', lineno)
        label = version = None
        while parser.stream.current.type != "block_end":
            parser.stream.skip_if("comma")
            key = parser.stream.expect("name")
            parser.stream.expect("assign")
            value = parser.parse_expression()
            if not isinstance(value, nodes.Const):
                parser.fail(f"include_prompt {key.value}= needs a literal value", key.lineno)
            if key.value == "label" and isinstance(value.value, str):
                label = value.value
            elif key.value == "version" and isinstance(value.value, int) and value.value >= 1:
                version = value.value
            else:
                parser.fail('include_prompt accepts label="…" or version=N (a positive number), '
                            f"not {key.value}={value.value!r}", key.lineno)
        if label is not None and version is not None:
            parser.fail("include_prompt takes label= or version=, not both", lineno)
        call = self.call_method("_include", [nodes.Const(name_node.value), nodes.Const(label), nodes.Const(version),
                                             nodes.ContextReference()], lineno=lineno)
        return nodes.Output([call], lineno=lineno)

    def _include(self, name, label, version, context):
        session = _session.get()
        if session is None:
            raise TemplateError("include_prompt can only be rendered through the prompt catalog")
        return session.render_include(Reference(name, label, version), context.get_all())


class PromptEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, plus limits on `*` and `**` so a template cannot exhaust memory or CPU."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) \
                        and len(seq) * max(times, 0) > MAX_OUTPUT_CHARS:
                    raise SecurityError(f"repeating a value {times} times would exceed {MAX_OUTPUT_CHARS:,} items")
        if operator == "**" and isinstance(right, int | float) and abs(right) > 100:
            raise SecurityError("exponents above 100 are not allowed in templates")
        return super().call_binop(context, operator, left, right)


ENV = PromptEnvironment(
    undefined=StrictUndefined,
    extensions=[IncludePromptExtension],
    autoescape=False,
    keep_trailing_newline=True,
    auto_reload=False,
)
MAX_RANGE_ITEMS = 100_000  # per render, all range() calls together
_range_budget: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("prompt_range", default=None)


def _budgeted_range(*args):
    """range() with one budget per render, so nested loops cannot spin for minutes."""
    numbers = range(*args)
    budget = _range_budget.get()
    if budget is not None:
        budget[0] -= len(numbers)
        if budget[0] < 0:
            raise SecurityError(f"range() may produce at most {MAX_RANGE_ITEMS:,} numbers per render")
    elif len(numbers) > MAX_RANGE_ITEMS:
        raise SecurityError(f"range() may produce at most {MAX_RANGE_ITEMS:,} numbers")
    return numbers


ENV.globals["range"] = _budgeted_range
_GLOBAL_NAMES = frozenset(ENV.globals)


@functools.lru_cache(maxsize=2048)
def _compile(source: str, filename: str):
    """Compiled templates, keyed by their text (versions are immutable, so the text is the identity)."""
    code = ENV.compile(source, name=filename, filename=filename)
    return ENV.template_class.from_code(ENV, code, ENV.make_globals(None), None)


# --- analysis --------------------------------------------------------------------------------------------

@dataclass
class Analysis:
    variables: set[str] = field(default_factory=set)
    references: list[Reference] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _syntax_problem(exc: TemplateSyntaxError, where: str | None) -> Problem:
    return Problem("syntax", f"{_at(where, exc.lineno)}syntax error: {exc.message}", line=exc.lineno, where=where)


def _at(where: str | None, line: int | None) -> str:
    parts = [p for p in (where, f"line {line}" if line else None) if p]
    return f"{', '.join(parts)}: " if parts else ""


def analyse(source: str, where: str | None = None) -> Analysis:
    """Parse one template: its variables, its includes, and anything that would fail in the sandbox."""
    result = Analysis()
    try:
        ast = ENV.parse(source)
    except TemplateSyntaxError as exc:
        result.problems.append(_syntax_problem(exc, where))
        return result
    result.variables = set(meta.find_undeclared_variables(ast)) - _GLOBAL_NAMES
    # Reading private attributes is what a sandbox escape starts with: refuse it when the template is saved.
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        attr = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(attr, str) and attr.startswith("_"):
            result.problems.append(Problem(
                "sandbox", f"{_at(where, node.lineno)}access to {attr!r} is not allowed: templates may not read "
                           "private attributes", line=node.lineno, where=where))
    for node in ast.find_all((nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport)):
        tag = {"Include": "include", "Extends": "extends", "Import": "import", "FromImport": "from … import"}[
            type(node).__name__]
        result.problems.append(Problem(
            "syntax", f"{_at(where, node.lineno)}{{% {tag} %}} is not available in prompts: use "
                      '{% include_prompt "name" %} to include another prompt', line=node.lineno, where=where))
    seen = set()
    for call in ast.find_all(nodes.Call):
        if isinstance(call.node, nodes.ExtensionAttribute) and call.node.name == "_include":
            name, label, version = (arg.value for arg in call.args[:3])
            ref = Reference(name, label, version)
            if ref.key not in seen:
                seen.add(ref.key)
                result.references.append(ref)
    return result


# --- inlining (the "rendered-ready" template of the resolve API) ------------------------------------------

_INCLUDE_TAG = re.compile(
    r"\{%(?P<lstrip>-?)\s*include_prompt\s+(?P<q>[\"'])(?P<name>[^\"']+)(?P=q)"
    r"(?:\s*,?\s*(?P<key>label|version)\s*=\s*(?P<value>\"[^\"]*\"|'[^']*'|\d+))?\s*(?P<rstrip>-?)%\}"
)


def find_include_tags(source: str) -> list[Reference]:
    refs = []
    for m in _INCLUDE_TAG.finditer(source):
        value = m.group("value")
        if m.group("key") == "version":
            refs.append(Reference(m.group("name"), None, int(value)))
        else:
            refs.append(Reference(m.group("name"), value.strip("\"'") if value else None, None))
    return refs


def inline_includes(source: str, replacement) -> str:
    """Replace each include tag with `replacement(Reference)` (the included text), honouring {%- -%}."""
    out, pos = [], 0
    for m in _INCLUDE_TAG.finditer(source):
        before = source[pos:m.start()]
        if m.group("lstrip"):
            before = before.rstrip()
        out.append(before)
        value = m.group("value")
        ref = (Reference(m.group("name"), None, int(value)) if m.group("key") == "version"
               else Reference(m.group("name"), value.strip("\"'") if value else None, None))
        out.append(replacement(ref))
        pos = m.end()
        if m.group("rstrip"):
            while pos < len(source) and source[pos].isspace():
                pos += 1
    out.append(source[pos:])
    return "".join(out)


# --- rendering -------------------------------------------------------------------------------------------

@dataclass
class Part:
    """A template to render: the whole text of a text prompt, or one message of a chat prompt."""

    source: str
    where: str  # shown in messages: "support/x v3" or "support/x v3, message 2 (user)"
    role: str | None = None


@dataclass
class IncludeTarget:
    """What an include resolved to, before rendering: the version's parts and its own identity."""

    name: str
    number: int
    source: str
    where: str


class RenderSession:
    """Holds the include map of one render and the stack that detects cycles."""

    def __init__(self, includes: dict[tuple, IncludeTarget]):
        self.includes = includes
        self.stack: list[str] = []
        self.filenames: set[str] = set()

    def render_include(self, ref: Reference, variables: dict) -> str:
        target = self.includes.get(ref.key)
        if target is None:
            raise _IncludeError(f"include_prompt {ref.name!r} ({ref.selector}) was not resolved")
        ident = f"{target.name} v{target.number}"
        if ident in self.stack or len(self.stack) >= MAX_INCLUDE_DEPTH:
            chain = " → ".join([*self.stack, ident])
            raise _IncludeError(f"include cycle: {chain}" if ident in self.stack
                                else f"includes nest deeper than {MAX_INCLUDE_DEPTH}: {chain}")
        template = _compile(target.source, target.where)
        self.filenames.add(target.where)
        self.stack.append(ident)
        try:
            return template.render(variables)
        finally:
            self.stack.pop()


class _IncludeError(TemplateError):
    pass


def _template_line(exc: BaseException, filenames: set[str]) -> tuple[str | None, int | None]:
    """Jinja rewrites tracebacks so template frames carry the template's name and line: find the last one."""
    where = line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename in filenames:
            where, line = frame.filename, frame.lineno
    return where, line


def render_parts(parts: list[Part], variables: dict, includes: dict[tuple, IncludeTarget],
                 root: str) -> list[str]:
    """Render each part with `variables`. Raises RenderFailed listing every problem found."""
    session = _session.get()
    own = session is None
    if own:
        session = RenderSession(includes)
    session.stack.append(root)
    handle = _session.set(session)
    budget_handle = _range_budget.set([MAX_RANGE_ITEMS]) if own else None
    outputs, problems = [], []
    try:
        for part in parts:
            try:
                template = _compile(part.source, part.where)
            except TemplateSyntaxError as exc:
                problems.append(_syntax_problem(exc, part.where))
                continue
            session.filenames.add(part.where)
            try:
                text = template.render(variables)
            except TemplateSyntaxError as exc:  # in an included template
                problems.append(_syntax_problem(exc, exc.filename or exc.name))
                continue
            except Exception as exc:  # noqa: BLE001 - every failure of user code becomes a Problem
                problems.append(_runtime_problem(exc, session.filenames, part.where))
                continue
            if len(text) > MAX_OUTPUT_CHARS:
                problems.append(Problem("runtime", f"{part.where}: the rendered text is longer than "
                                                   f"{MAX_OUTPUT_CHARS:,} characters", where=part.where))
                continue
            outputs.append(text)
    finally:
        _session.reset(handle)
        if budget_handle is not None:
            _range_budget.reset(budget_handle)
        session.stack.pop()
    if problems:
        raise RenderFailed(problems)
    return outputs


def _runtime_problem(exc: Exception, filenames: set[str], default_where: str) -> Problem:
    where, line = _template_line(exc, filenames)
    where = where or default_where
    if isinstance(exc, SecurityError):
        return Problem("sandbox", f"{_at(where, line)}blocked by the sandbox: {exc}", line=line, where=where)
    if isinstance(exc, UndefinedError):
        variable = _undefined_name(str(exc))
        return Problem("undefined", f"{_at(where, line)}{exc.message or exc}", variable=variable, line=line,
                       where=where)
    if isinstance(exc, _IncludeError):
        return Problem("include", f"{_at(where, line)}{exc}", line=line, where=where)
    return Problem("runtime", f"{_at(where, line)}{type(exc).__name__}: {exc}", line=line, where=where)


def _undefined_name(message: str) -> str | None:
    m = re.match(r"'([^']+)' is undefined", message)
    if m:
        return m.group(1)
    m = re.search(r"has no attribute '([^']+)'", message)
    return m.group(1) if m else None
