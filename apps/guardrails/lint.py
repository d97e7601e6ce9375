"""Prompt template lint for the prompt catalog: `lint_template(...)`.

Templates use Jinja syntax. The caller parses the template and passes the variables it uses;
this module finds where they appear to give line numbers and to check their surroundings.
"""

import re

from .findings import LintCode, LintFinding, PiiType, Severity
from .pii import detect_pii

__all__ = ["lint_template"]

_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_EXPRESSION = re.compile(r"\{\{-?\s*(?P<name>[A-Za-z_]\w*)(?P<rest>.*?)-?\}\}", re.DOTALL)
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_NOT_NEWLINE = re.compile(r"[^\n]")

# Names that usually carry text from a user or a document, i.e. untrusted input.
_USER_INPUT_WORDS = frozenset({"input", "question", "query", "message", "document", "context", "text"})
_OPENING_TAG = re.compile(r"<(?P<tag>[A-Za-z][\w.:-]*)(?:\s[^<>]*)?>$")
_OPENING_FENCE = re.compile(r"(?:\"\"\"|'''|```[\w-]*|~~~[\w-]*)$")
_FENCE_LINE = re.compile(r"^\s*(?:-{3,}|={3,}|#{1,6}(?:\s.*)?|\"\"\"|'''|```[\w-]*|~~~[\w-]*)\s*$")
# PII that must never sit in a shared, versioned template; the rest is worth a warning.
_SEVERE_PII = frozenset({PiiType.SECRET, PiiType.CARD, PiiType.IBAN, PiiType.SSN})


def lint_template(
    template_text: str, *, declared_variables: set[str] | None, used_variables: set[str]
) -> list[LintFinding]:
    """Findings ordered by line. `declared_variables` None means the template declares none,
    so the declared/used comparison is skipped."""
    findings: list[LintFinding] = []
    if declared_variables is not None:
        findings += _undeclared_and_unused(template_text, declared_variables, used_variables)
    findings += _pii_in_literal_text(template_text)
    findings += _undelimited_user_input(template_text)
    return sorted(findings, key=lambda f: (f.line is None, f.line or 0, f.code, f.variable or ""))


def is_user_input_name(name: str) -> bool:
    """`question`, `user_bio`, `email_text`, `documents`: names that suggest untrusted text."""
    words = name.lower().split("_")
    last = words[-1].removesuffix("s") if len(words[-1]) > 3 else words[-1]
    return words[0] == "user" or last in _USER_INPUT_WORDS


def _undeclared_and_unused(template: str, declared: set[str], used: set[str]) -> list[LintFinding]:
    findings = []
    for name in sorted(used - declared):
        findings.append(
            LintFinding(
                LintCode.UNDECLARED_VARIABLE,
                f"Variable '{name}' is used in the template but not declared; declare it or remove it.",
                Severity.ERROR,
                _first_line_of(template, name),
                name,
            )
        )
    for name in sorted(declared - used):
        findings.append(
            LintFinding(
                LintCode.UNUSED_VARIABLE,
                f"Variable '{name}' is declared but the template never uses it.",
                Severity.WARNING,
                None,
                name,
            )
        )
    return findings


def _first_line_of(template: str, name: str) -> int | None:
    for tag in _TAG.finditer(template):
        if name in _IDENTIFIER.findall(tag.group()):
            return _line_at(template, tag.start())
    return None


def _pii_in_literal_text(template: str) -> list[LintFinding]:
    # Blank out the tags (keeping newlines) so offsets and line numbers stay those of the template.
    literal = _TAG.sub(lambda tag: _NOT_NEWLINE.sub(" ", tag.group()), template)
    findings = []
    for pii in detect_pii(literal):
        severe = pii.type in _SEVERE_PII
        findings.append(
            LintFinding(
                LintCode.PII_IN_TEMPLATE,
                f"The template text contains {_describe(pii.type)} ({_mask(pii.text)}); templates are shared and "
                f"versioned, so use a variable or a placeholder such as {_placeholder_example(pii.type)}.",
                Severity.ERROR if severe else Severity.WARNING,
                _line_at(template, pii.start),
            )
        )
    return findings


def _undelimited_user_input(template: str) -> list[LintFinding]:
    findings = []
    for expression in _EXPRESSION.finditer(template):
        name = expression.group("name")
        if not is_user_input_name(name) or _is_delimited(template, expression.start(), expression.end()):
            continue
        if "tojson" in expression.group("rest"):
            continue  # JSON encoding quotes and escapes the value
        findings.append(
            LintFinding(
                LintCode.UNDELIMITED_USER_INPUT,
                f"Variable '{name}' looks like user input and is rendered without delimiters; wrap it, e.g. "
                f"<{name}>{{{{ {name} }}}}</{name}>, so the model can tell the input from your instructions.",
                Severity.WARNING,
                _line_at(template, expression.start()),
                name,
            )
        )
    return findings


def _is_delimited(template: str, start: int, end: int) -> bool:
    before, after = template[:start].rstrip(), template[end:].lstrip()
    tag = _OPENING_TAG.search(before)
    if tag and _closes(after, tag.group("tag")):
        return True
    fence = _OPENING_FENCE.search(before)
    if fence and after.startswith(fence.group()[:3]):
        return True
    return _in_fenced_section(template, start, end)


def _closes(after: str, tag: str) -> bool:
    """Whether `after` starts with the closing tag </tag>."""
    opening = f"</{tag}"
    return after.startswith(opening) and after[len(opening) :].lstrip().startswith(">")


def _in_fenced_section(template: str, start: int, end: int) -> bool:
    """Alone on its lines, with a fence line (---, ###, ```) before it and a fence or the end after it."""
    line_start = template.rfind("\n", 0, start) + 1
    line_end = template.find("\n", end)
    line_end = len(template) if line_end == -1 else line_end
    if template[line_start:start].strip() or template[end:line_end].strip():
        return False
    previous = [line for line in template[:line_start].splitlines() if line.strip()]
    following = [line for line in template[line_end:].splitlines() if line.strip()]
    opened = bool(previous) and _FENCE_LINE.match(previous[-1]) is not None
    closed = not following or _FENCE_LINE.match(following[0]) is not None
    return opened and closed


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _describe(pii_type: PiiType) -> str:
    return {
        PiiType.EMAIL: "an e-mail address",
        PiiType.PHONE: "a phone number",
        PiiType.CARD: "a payment card number",
        PiiType.IBAN: "an IBAN",
        PiiType.SSN: "a social security number",
        PiiType.IP: "an IP address",
        PiiType.SECRET: "what looks like a secret key or token",
    }[pii_type]


def _placeholder_example(pii_type: PiiType) -> str:
    return {
        PiiType.EMAIL: "jane@example.com",
        PiiType.PHONE: "+1 555 0100",
        PiiType.IP: "192.0.2.1",
    }.get(pii_type, f"[{pii_type.value}]")


def _mask(value: str) -> str:
    """Enough of the value to find it, not enough to leak it further through lint output."""
    flat = " ".join(value.split())
    return f"{flat[:4]}…" if len(flat) > 6 else "…"
