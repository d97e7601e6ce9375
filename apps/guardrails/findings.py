"""The value types the guardrails return. They are findings with a confidence, never verdicts:
the caller decides what a finding means for its feature (redact, warn, block, ask a human)."""

from dataclasses import dataclass
from enum import StrEnum


class PiiType(StrEnum):
    EMAIL = "EMAIL"
    PHONE = "PHONE"
    CARD = "CARD"
    IBAN = "IBAN"
    SSN = "SSN"
    IP = "IP"
    SECRET = "SECRET"


@dataclass(frozen=True, slots=True)
class PiiFinding:
    type: PiiType
    start: int  # offsets into the scanned text, end exclusive: text[start:end] == self.text
    end: int
    text: str
    confidence: float  # 0..1


@dataclass(frozen=True, slots=True)
class RedactionResult:
    text: str  # the redacted text
    findings: list[PiiFinding]  # offsets refer to the original text


class InjectionKind(StrEnum):
    INSTRUCTION_OVERRIDE = "instruction-override"  # "ignore all previous instructions"
    JAILBREAK = "jailbreak"  # role-play markers: DAN, developer mode, "no restrictions"
    PROMPT_EXFILTRATION = "prompt-exfiltration"  # "reveal your system prompt"
    HIDDEN_TEXT = "hidden-text"  # invisible characters, hidden HTML/CSS
    ENCODED_INSTRUCTIONS = "encoded-instructions"  # base64 blobs that decode to instructions
    ROLE_SPOOFING = "role-spoofing"  # fake chat delimiters and turns


@dataclass(frozen=True, slots=True)
class InjectionFinding:
    kind: InjectionKind
    start: int
    end: int
    text: str
    confidence: float
    explanation: str  # one sentence a reviewer can read


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class LintCode(StrEnum):
    UNDECLARED_VARIABLE = "undeclared-variable"
    UNUSED_VARIABLE = "unused-variable"
    PII_IN_TEMPLATE = "pii-in-template"
    UNDELIMITED_USER_INPUT = "undelimited-user-input"


@dataclass(frozen=True, slots=True)
class LintFinding:
    code: LintCode
    message: str
    severity: Severity
    line: int | None  # 1-based; None when the finding is about the template as a whole
    variable: str | None = None
