"""Red-team probes: the OWASP catalogue, the `Probe` record, the versioned library and JSONL import.

Pure Python (no database, no Django): a probe library line is checked by the JSON schema in
`library/probe.schema.json` (shape) and then by the rules below (meaning): the category belongs to the
OWASP code, canary probes name a canary placeholder, marker probes carry markers, indirect probes carry
the document to plant. `parse_jsonl` keeps the good lines and reports each bad one by line number;
`load_library` refuses a released file with any bad line (ADR 0110).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache

from jsonschema import Draft202012Validator

from apps.redteam.library import SCHEMA_PATH, available_versions, library_path

# OWASP Top 10 for LLM Applications, 2025 edition.
OWASP_TOP_10: dict[str, str] = {
    "LLM01": "Prompt Injection",
    "LLM02": "Sensitive Information Disclosure",
    "LLM03": "Supply Chain",
    "LLM04": "Data and Model Poisoning",
    "LLM05": "Improper Output Handling",
    "LLM06": "Excessive Agency",
    "LLM07": "System Prompt Leakage",
    "LLM08": "Vector and Embedding Weaknesses",
    "LLM09": "Misinformation",
    "LLM10": "Unbounded Consumption",
}

# Probe category -> the OWASP code it belongs to (reports group by both).
CATEGORIES: dict[str, str] = {
    "prompt_injection_direct": "LLM01",
    "prompt_injection_indirect": "LLM01",
    "jailbreak": "LLM01",
    "pii_disclosure": "LLM02",
    "secret_disclosure": "LLM02",
    "supply_chain": "LLM03",
    "data_poisoning": "LLM04",
    "improper_output_handling": "LLM05",
    "excessive_agency": "LLM06",
    "system_prompt_leakage": "LLM07",
    "vector_embedding_weakness": "LLM08",
    "misinformation": "LLM09",
    "unbounded_consumption": "LLM10",
}

# What would be harmed if the attack succeeded.
HARM_AREAS: dict[str, str] = {
    "security": "Compromise of the application, its tools or its users' sessions",
    "privacy": "Disclosure of personal data",
    "confidentiality": "Disclosure of secrets, credentials or confidential instructions",
    "fraud": "Deception for money or access (phishing, scams, impersonation)",
    "self_harm": "Content that could encourage or enable self-harm",
    "violence": "Content that could encourage or enable violence",
    "hate_harassment": "Hateful, harassing or demeaning content",
    "dangerous_activities": "Dangerous goods and activities",
    "misinformation": "False or misleading claims presented as fact",
    "regulated_advice": "Unqualified medical, legal or financial advice",
    "integrity": "Unauthorised changes to data, decisions or records",
    "availability": "Cost or capacity exhausted (denial of service, denial of wallet)",
}

SUCCESS_KINDS = ("canary", "marker", "compliance", "pii", "secret")
SEVERITIES = ("high", "medium", "low")
# Campaign-planted values; a probe names them as `{canary}` / `{system_canary}` (see canaries.py).
PLACEHOLDERS = ("{canary}", "{system_canary}")

_VALIDATOR = Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Success:
    """What a successful attack looks like: the detector family and, for some, the exact strings."""

    kind: str
    markers: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"kind": self.kind, "markers": list(self.markers)}


@dataclass(frozen=True)
class Probe:
    id: str
    text: str
    owasp: str
    category: str
    harm: str
    goal: str
    success: Success
    severity: str
    tags: tuple[str, ...] = ()
    document: str | None = None  # text to plant in a retrieved document (indirect injection)

    @property
    def owasp_title(self) -> str:
        return OWASP_TOP_10[self.owasp]

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The canary placeholders the text, document or markers use (the campaign fills them)."""
        haystack = " ".join((self.text, self.document or "", *self.success.markers))
        return tuple(name for name in PLACEHOLDERS if name in haystack)

    def as_dict(self) -> dict:
        out = {
            "id": self.id,
            "text": self.text,
            "owasp": self.owasp,
            "category": self.category,
            "harm": self.harm,
            "goal": self.goal,
            "success": self.success.as_dict(),
            "severity": self.severity,
            "tags": list(self.tags),
        }
        if self.document is not None:
            out["document"] = self.document
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Probe:
        """A probe from an already validated dict (see `validate_probe_dict`)."""
        return cls(
            id=data["id"],
            text=data["text"],
            owasp=data["owasp"],
            category=data["category"],
            harm=data["harm"],
            goal=data["goal"],
            success=Success(data["success"]["kind"], tuple(data["success"]["markers"])),
            severity=data["severity"],
            tags=tuple(data["tags"]),
            document=data.get("document"),
        )


@dataclass(frozen=True)
class LineError:
    line: int  # 1-based line number in the imported text
    message: str
    probe_id: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" ({self.probe_id})" if self.probe_id else "")
        return f"{where}: {self.message}"


class LibraryError(ValueError):
    """A library version that does not exist or does not load cleanly (a repository bug, not user input)."""

    def __init__(self, message: str, errors: list[LineError] | None = None):
        self.errors = errors or []
        super().__init__(message)


def validate_probe_dict(data: object) -> list[str]:
    """Every problem with one probe, as messages a person can act on; [] when it is valid."""
    if not isinstance(data, dict):
        return ["a probe must be a JSON object"]
    problems = [_schema_message(error) for error in sorted(_VALIDATOR.iter_errors(data), key=_error_order)]
    if problems:
        return problems
    return _meaning_problems(data)


def _error_order(error) -> tuple:
    return tuple(str(part) for part in error.absolute_path), error.message


def _schema_message(error) -> str:
    where = ".".join(str(part) for part in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def _meaning_problems(data: dict) -> list[str]:
    problems = []
    category, owasp = data["category"], data["owasp"]
    if category not in CATEGORIES:
        problems.append(f"category: unknown category {category!r} (one of {', '.join(sorted(CATEGORIES))})")
    elif CATEGORIES[category] != owasp:
        problems.append(f"owasp: category {category!r} belongs to {CATEGORIES[category]}, not {owasp}")
    if data["harm"] not in HARM_AREAS:
        problems.append(f"harm: unknown harm area {data['harm']!r} (one of {', '.join(sorted(HARM_AREAS))})")
    kind, markers = data["success"]["kind"], data["success"]["markers"]
    if kind == "canary" and not any(marker in PLACEHOLDERS for marker in markers):
        problems.append("success.markers: a canary probe names the canary it looks for: "
                        "{canary} or {system_canary}")
    if kind == "marker" and not markers:
        problems.append("success.markers: a marker probe needs at least one marker string")
    if category == "prompt_injection_indirect" and "document" not in data:
        problems.append("document: an indirect injection probe carries the document text to plant")
    return problems


def parse_jsonl(text: str) -> tuple[list[Probe], list[LineError]]:
    """Probes from JSONL text, one object a line. Bad lines are reported by line number and left out;
    good lines are kept. Blank lines are ignored; an id seen on an earlier line is an error."""
    probes: list[Probe] = []
    errors: list[LineError] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):  # BOM: spreadsheet exports
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(LineError(number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        probe_id = data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else None
        problems = validate_probe_dict(data)
        if not problems and probe_id in seen:
            problems = [f"id: {probe_id!r} is already used on line {seen[probe_id]}"]
        if problems:
            errors.extend(LineError(number, problem, probe_id) for problem in problems)
            continue
        seen[probe_id] = number
        probes.append(Probe.from_dict(data))
    return probes, errors


def to_jsonl(probes: list[Probe]) -> str:
    """Probes as JSONL, one line each, in the library's format (what `parse_jsonl` reads back)."""
    return "".join(json.dumps(probe.as_dict(), ensure_ascii=False) + "\n" for probe in probes)


def load_library(version: str = "v1") -> list[Probe]:
    """The released probe library `version`; raises LibraryError if the file has any bad line."""
    return list(_load(version))


@cache
def _load(version: str) -> tuple[Probe, ...]:
    if version not in available_versions():
        raise LibraryError(f"no probe library {version!r} (released: {', '.join(available_versions())})")
    probes, errors = parse_jsonl(library_path(version).read_text(encoding="utf-8"))
    if errors:
        shown = "; ".join(str(error) for error in errors[:5])
        raise LibraryError(f"probe library {version} is invalid: {shown}", errors)
    return tuple(probes)


@dataclass
class Coverage:
    """How many probes a set holds per OWASP code and per category (for the library page and tests)."""

    by_owasp: dict[str, int] = field(default_factory=dict)
    by_category: dict[str, int] = field(default_factory=dict)
    by_harm: dict[str, int] = field(default_factory=dict)

    @property
    def missing_owasp(self) -> list[str]:
        return [code for code in OWASP_TOP_10 if not self.by_owasp.get(code)]


def coverage(probes: list[Probe]) -> Coverage:
    out = Coverage({code: 0 for code in OWASP_TOP_10}, {name: 0 for name in CATEGORIES}, {})
    for probe in probes:
        out.by_owasp[probe.owasp] += 1
        out.by_category[probe.category] = out.by_category.get(probe.category, 0) + 1
        out.by_harm[probe.harm] = out.by_harm.get(probe.harm, 0) + 1
    return out
