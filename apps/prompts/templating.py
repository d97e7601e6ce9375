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
import string
import traceback
from dataclasses import dataclass, field

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg, generate_lorem_ipsum

DEFAULT_INCLUDE_LABEL = "production"
MAX_INCLUDE_DEPTH = 8
MAX_OUTPUT_CHARS = 200_000
MAX_RENDER_CHARS = 10 * MAX_OUTPUT_CHARS  # every string one render builds, together (garbage included)
MAX_INT_BITS = 100_000


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


# --- the allocation budget ---------------------------------------------------------------------------------
# The output cap alone is checked after rendering, when `{{ 'a'|center(10**8) }}` has already built 100 MB.
# So every operation that builds a string or list is charged while rendering: those whose size a parameter
# decides (center's width, replace's count, join's items, % and format widths, * and +, ~) are checked
# *before* they run; the rest (upper, escape, tojson…), which grow at most a few times their input, after.
# One value may not exceed MAX_OUTPUT_CHARS, and one render may not build more than MAX_RENDER_CHARS in all.

_alloc_budget: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("prompt_alloc", default=None)


def _charge(size: int, what: str = "a value") -> None:
    if size > MAX_OUTPUT_CHARS:
        raise SecurityError(f"{what} of {size:,} characters would exceed the {MAX_OUTPUT_CHARS:,}-character limit")
    budget = _alloc_budget.get()
    if budget is not None:
        budget[0] -= size
        if budget[0] < 0:
            raise SecurityError(f"the template builds more than {MAX_RENDER_CHARS:,} characters in one render")


def _size(value, limit: int = MAX_OUTPUT_CHARS + 1) -> int:
    """An upper bound of len(str(value)) (repr of nested strings included), computed without building it and
    stopping once past `limit` (anything past the output cap is refused anyway)."""
    total, stack = 0, [(value, False)]
    while stack and total <= limit:
        item, nested = stack.pop()
        if isinstance(item, str):
            total += 4 * len(item) + 2 if nested else len(item)
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        elif isinstance(item, float):
            total += 25
        elif isinstance(item, dict | list | tuple | set | frozenset):
            total += 2 + (4 if isinstance(item, dict) else 2) * len(item)
            if total <= limit:
                stack.extend((x, True) for pair in item.items() for x in pair) if isinstance(item, dict) \
                    else stack.extend((x, True) for x in item)
        else:
            total += len(str(item))
    return total


def _sizes(items, extra_each: int = 0, limit: int = MAX_OUTPUT_CHARS + 1) -> int:
    """_size of each item plus `extra_each`, added up until past `limit`."""
    total = 0
    for item in items:
        total += (len(item) if isinstance(item, str) else _size(item, limit)) + extra_each
        if total > limit:
            break
    return total


_WIDTH = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _format_widths(spec: str, new_style: bool = False) -> int:
    """The widths and precisions a %-format (or str.format) string asks for; '*' counts as too wide."""
    total = 0
    if new_style:
        for _, _, field_spec, _ in string.Formatter().parse(spec):
            for digits in re.findall(r"\d+", field_spec or ""):
                total += int(digits) if len(digits) < 8 else MAX_RENDER_CHARS
            if field_spec and "{" in field_spec:
                total += MAX_RENDER_CHARS  # a nested width comes from the arguments
        return total
    for width, precision in _WIDTH.findall(spec):
        for number in (width, precision):
            total += MAX_RENDER_CHARS if number == "*" or len(number) >= 8 else int(number or 0)
    return total


def _join_estimate(items: list, separator: str) -> int:
    return _sizes(items, extra_each=len(separator))


def _replace_estimate(text: str, old: str, new: str, count=None) -> int:
    occurrences = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    return len(text) + occurrences * max(0, len(new) - len(old))


def _str(value) -> str:
    return value if isinstance(value, str) else str(value)


# Filters whose output size a parameter decides: (value, *args, **kwargs) -> an upper bound, checked first.
_FILTER_ESTIMATES = {
    "center": lambda v, width=80: max(len(_str(v)), width if isinstance(width, int) else 0),
    "indent": lambda s, width=4, *a, **k: len(_str(s)) + (_str(s).count("\n") + 1) * (
        width if isinstance(width, int) else len(_str(width))),
    "format": lambda v, *args, **kwargs: len(_str(v)) + _format_widths(_str(v)) + _size(args or kwargs),
    "replace": lambda s, old, new, count=None: _replace_estimate(_str(s), _str(old), _str(new), count),
    "wordwrap": lambda s, width=79, blw=True, wrapstring=None, *a, **k: 2 * len(_str(s)) + (
        len(_str(s)) // max(width if isinstance(width, int) else 1, 1) + _str(s).count("\n") + 1) * len(
        wrapstring or "\n"),
    "truncate": lambda s, length=255, killwords=False, end="...", *a, **k: len(_str(s)) + len(_str(end)),
    "urlize": lambda v, trim=None, nofollow=False, target=None, rel=None, *a, **k: len(_str(v)) + (
        len(_str(target or "")) + len(_str(rel or ""))) * (_str(v).count(".") + _str(v).count("@") + 1),
    "tojson": lambda v, indent=None: 6 * _size(v) + (_size(v) * indent if isinstance(indent, int) else 0),
    "batch": lambda v, linecount, fill_with=None: linecount if fill_with is not None else 0,
    "slice": lambda v, slices, fill_with=None: slices * 100,
}


def _budgeted_filter(name: str, func):
    estimate = _FILTER_ESTIMATES.get(name)
    skip = 1 if _PassArg.from_obj(func) else 0

    @functools.wraps(func)
    def run(*args, **kwargs):
        args = list(args)
        if name in ("join", "sum") and len(args) > skip:  # materialise once: the estimate and the filter read it
            args[skip] = list(args[skip])
            if name == "join":
                _charge(_join_estimate(args[skip], _str(args[skip + 1]) if len(args) > skip + 1
                                       else kwargs.get("d", "")), "joining these values")
            elif not all(isinstance(x, int | float) for x in args[skip]):
                _charge(_sizes(args[skip]), "summing these values")
        elif estimate is not None:
            try:
                size = estimate(*args[skip:], **kwargs)
            except TypeError:  # wrong arguments: the filter itself says so
                size = 0
            _charge(size if isinstance(size, int) else 0, f"the {name} filter's result")
        result = func(*args, **kwargs)
        if isinstance(result, str | list | tuple) and estimate is None and name not in ("join", "sum"):
            _charge(len(result), f"the {name} filter's result")
        return result

    return run


# str methods a template may call, and the size their result can reach (checked before the call).
_STR_METHOD_ESTIMATES = {
    "center": lambda s, width, *a: max(len(s), width if isinstance(width, int) else 0),
    "ljust": lambda s, width, *a: max(len(s), width if isinstance(width, int) else 0),
    "rjust": lambda s, width, *a: max(len(s), width if isinstance(width, int) else 0),
    "zfill": lambda s, width: max(len(s), width if isinstance(width, int) else 0),
    "expandtabs": lambda s, tabsize=8: len(s) + s.count("\t") * (tabsize if isinstance(tabsize, int) else 0),
    "replace": lambda s, old, new, count=-1: _replace_estimate(s, _str(old), _str(new), count),
    "format": lambda s, *args, **kwargs: len(s) + _format_widths(s, new_style=True) + _size(args) + _size(kwargs),
    "format_map": lambda s, mapping: len(s) + _format_widths(s, new_style=True) + _size(mapping),
}
_BLOCKED_STR_METHODS = {"translate", "maketrans"}


class _BudgetedCodeGenerator(CodeGenerator):
    """`a ~ b` builds a new string: route it through the environment so it is charged."""

    def visit_Concat(self, node, frame):
        self.write("environment.joined((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class PromptEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, plus a budget on everything a render builds, so a template cannot exhaust memory or CPU."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BudgetedCodeGenerator

    def call_binop(self, context, operator, left, right):
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) \
                        and len(seq) * max(times, 0) > MAX_OUTPUT_CHARS:
                    raise SecurityError(f"repeating a value {times} times would exceed {MAX_OUTPUT_CHARS:,} items")
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    _charge(len(seq) * max(times, 0), "repeating a value")
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise SecurityError(f"numbers above {MAX_INT_BITS:,} bits are not allowed in templates")
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > 100:
                raise SecurityError("exponents above 100 are not allowed in templates")
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() * abs(right) > MAX_INT_BITS:
                raise SecurityError(f"numbers above {MAX_INT_BITS:,} bits are not allowed in templates")
        if operator == "+" and isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            _charge(len(left) + len(right), "joining two values")
        if operator == "%" and isinstance(left, str):
            _charge(len(left) + _format_widths(left) + _size(right), "formatting a value")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - Jinja's own signature
        target = getattr(__obj, "__wrapped__", __obj)  # str.format comes wrapped by the sandbox
        owner = getattr(target, "__self__", None)
        name = getattr(target, "__name__", "")
        if isinstance(owner, str) and not isinstance(__obj, type):
            if name in _BLOCKED_STR_METHODS:
                raise SecurityError(f"str.{name} is not available in templates")
            if name == "join":
                items = list(args[0]) if args else []
                _charge(_join_estimate(items, owner), "joining these values")
                args = (items, *args[1:])
            elif name in _STR_METHOD_ESTIMATES:
                try:
                    size = _STR_METHOD_ESTIMATES[name](owner, *args, **kwargs)
                except TypeError:
                    size = 0
                _charge(size if isinstance(size, int) else 0, f"str.{name}'s result")
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, str | list | tuple) and not (isinstance(owner, str) and name in _STR_METHOD_ESTIMATES):
            _charge(len(result), "a call's result")
        return result

    def concat(self, pieces) -> str:
        """The rendered text (and each {% set %} block, macro and filter block): refused as soon as it grows past
        the output cap, before joining."""
        out, size = [], 0
        for piece in pieces:
            size += len(piece)
            if size > MAX_OUTPUT_CHARS:
                raise SecurityError(f"the rendered text is longer than {MAX_OUTPUT_CHARS:,} characters")
            out.append(piece)
        _charge(size, "the rendered text")
        return "".join(out)

    def joined(self, values) -> str:
        """`a ~ b ~ c`."""
        _charge(_sizes(values), "joining values with ~")
        return "".join(map(str, values))


def _finalize(value):
    """Each {{ output }}: charged by its size before it becomes text."""
    _charge(len(value) if isinstance(value, str) else _size(value), "an output value")
    return value


ENV = PromptEnvironment(
    undefined=StrictUndefined,
    extensions=[IncludePromptExtension],
    autoescape=False,
    keep_trailing_newline=True,
    auto_reload=False,
    finalize=_finalize,
)
ENV.filters = {name: _budgeted_filter(name, func) for name, func in ENV.filters.items()}
MAX_LIPSUM_WORDS = 10_000


def _budgeted_lipsum(n=5, html=True, min=20, max=100):  # noqa: A002 - Jinja's own parameter names

    if n * max > MAX_LIPSUM_WORDS:
        raise SecurityError(f"lipsum() may produce at most {MAX_LIPSUM_WORDS:,} words")
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


ENV.globals["lipsum"] = _budgeted_lipsum
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
    alloc_handle = _alloc_budget.set([MAX_RENDER_CHARS]) if own else None
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
        if alloc_handle is not None:
            _alloc_budget.reset(alloc_handle)
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
