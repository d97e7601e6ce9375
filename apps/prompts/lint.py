"""Lint of a version, through the guardrails app's `lint_template`: undeclared and unused variables, PII in
the template text, user input not delimited from instructions. Chat prompts are linted message by message;
a variable inside a `user` message is delimited by the role itself."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from apps.prompts.content import schema_properties
from apps.prompts.models import PromptKind, PromptVersion

try:  # guardrails stands below prompts; it is optional only while the tree is being assembled
    from apps.guardrails import LintCode, lint_template
except ImportError:  # pragma: no cover - exercised only in a tree without guardrails
    LintCode = None
    lint_template = None

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    message: str
    line: int | None = None
    variable: str | None = None
    where: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def lint_version(version: PromptVersion, *, extra_used: set[str] | frozenset = frozenset()) -> list[Finding]:
    """Findings for a version; `extra_used` are the variables its includes use (they must be declared too)."""
    kind = version.prompt.kind
    where = f"{version.prompt.name} v{version.number}"
    schema = version.variables_schema
    declared = schema_properties(schema) if schema else None
    used = set(version.variables) | set(extra_used)
    if lint_template is None:
        return [Finding("guardrails-missing", WARNING, "The guardrails app is not installed: PII and delimiter "
                                                       "checks did not run.", where=where)]
    findings: list[Finding] = []
    if kind == PromptKind.TEXT:
        for f in lint_template(version.template, declared_variables=declared, used_variables=used):
            findings.append(_finding(f, where))
        return findings
    # Chat: declared/used once for the whole version, PII and delimiters per message.
    if declared is not None:
        joined = "\n".join(m.get("content", "") for m in version.messages)
        for f in lint_template(joined, declared_variables=declared, used_variables=used):
            if str(f.code) in (LintCode.UNDECLARED_VARIABLE, LintCode.UNUSED_VARIABLE):
                findings.append(_finding(f, where, line=False))
    for i, message in enumerate(version.messages, start=1):
        part = f"{where}, message {i} ({message.get('role')})"
        for f in lint_template(message.get("content", ""), declared_variables=None, used_variables=used):
            if str(f.code) == LintCode.UNDELIMITED_USER_INPUT and message.get("role") == "user":
                continue  # the user turn is the delimiter
            findings.append(_finding(f, part))
    return findings


def _finding(f, where: str, line: bool = True) -> Finding:
    return Finding(code=str(f.code), severity=str(f.severity), message=f.message,
                   line=f.line if line else None, variable=f.variable, where=where)


def counts(findings: list[Finding]) -> tuple[int, int]:
    errors = sum(1 for f in findings if f.severity == ERROR)
    return errors, len(findings) - errors
