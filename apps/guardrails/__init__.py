"""Guardrails shared by every app: PII detection and redaction, prompt-injection heuristics and
prompt template lint. Pure Python, no models; see docs/guardrails.md."""

from .findings import (
    InjectionFinding,
    InjectionKind,
    LintCode,
    LintFinding,
    PiiFinding,
    PiiType,
    RedactionResult,
    Severity,
)
from .injection import injection_score, scan_injection
from .lint import lint_template
from .pii import PLACEHOLDERS, detect_pii, redact, redact_findings, redact_values

__all__ = [
    "PLACEHOLDERS",
    "InjectionFinding",
    "InjectionKind",
    "LintCode",
    "LintFinding",
    "PiiFinding",
    "PiiType",
    "RedactionResult",
    "Severity",
    "detect_pii",
    "injection_score",
    "lint_template",
    "redact",
    "redact_findings",
    "redact_values",
    "scan_injection",
]
