"""PII detection and redaction: `detect_pii(text)`, `redact(text)` and `redact_values(value)` (every string
in a JSON-like value).

Each detector yields candidate findings with a confidence; this module filters them by type and
confidence, then resolves overlaps so every character belongs to at most one finding.
"""

import bisect
from collections.abc import Callable, Iterable, Iterator

from ..findings import PiiFinding, PiiType, RedactionResult
from .contact import find_emails, find_phones
from .credentials import find_secrets
from .financial import find_cards, find_ibans, find_ssns
from .network import find_ip_addresses

__all__ = ["PLACEHOLDERS", "detect_pii", "redact", "redact_findings", "redact_values"]

DETECTORS: dict[PiiType, Callable[[str], Iterator[PiiFinding]]] = {
    PiiType.EMAIL: find_emails,
    PiiType.PHONE: find_phones,
    PiiType.CARD: find_cards,
    PiiType.IBAN: find_ibans,
    PiiType.SSN: find_ssns,
    PiiType.IP: find_ip_addresses,
    PiiType.SECRET: find_secrets,
}

PLACEHOLDERS: dict[PiiType, str] = {pii_type: f"[{pii_type.value}]" for pii_type in PiiType}


def detect_pii(
    text: str, *, types: Iterable[PiiType | str] | None = None, min_confidence: float = 0.5
) -> list[PiiFinding]:
    """Findings in `text` ordered by position, none overlapping another.

    `types` limits the search (PiiType members or their names, e.g. "EMAIL"); findings below
    `min_confidence` are dropped before overlaps are resolved, so a weak guess never hides a
    strong one.
    """
    wanted = list(DETECTORS) if types is None else [PiiType(t) for t in types]
    candidates = [
        finding
        for pii_type in wanted
        for finding in DETECTORS[pii_type](text)
        if finding.confidence >= min_confidence
    ]
    return _without_overlaps(candidates)


def redact(
    text: str, *, types: Iterable[PiiType | str] | None = None, min_confidence: float = 0.5
) -> RedactionResult:
    """`text` with each finding replaced by its placeholder, e.g. "mail [EMAIL] or call [PHONE]"."""
    findings = detect_pii(text, types=types, min_confidence=min_confidence)
    return RedactionResult(text=redact_findings(text, findings), findings=findings)


def redact_findings(text: str, findings: list[PiiFinding]) -> str:
    """`text` with these findings (of `detect_pii(text)`: ordered, none overlapping) replaced by placeholders,
    for a caller that already has the findings and must not scan twice."""
    parts: list[str] = []
    position = 0
    for finding in findings:
        parts.append(text[position : finding.start])
        parts.append(PLACEHOLDERS[finding.type])
        position = finding.end
    parts.append(text[position:])
    return "".join(parts)


def redact_values(value, *, min_confidence: float = 0.5) -> tuple[object, int]:
    """(a copy of `value` with every string in it redacted, how many spans were replaced). For JSON-like
    values (dicts, lists, strings, numbers): a chat request's messages, a response, metadata. Keys are kept."""
    if isinstance(value, str):
        result = redact(value, min_confidence=min_confidence)
        return result.text, len(result.findings)
    if isinstance(value, dict):
        pairs = [(k, redact_values(v, min_confidence=min_confidence)) for k, v in value.items()]
        return {k: v for k, (v, _n) in pairs}, sum(n for _k, (_v, n) in pairs)
    if isinstance(value, list | tuple):
        items = [redact_values(v, min_confidence=min_confidence) for v in value]
        return [v for v, _n in items], sum(n for _v, n in items)
    return value, 0


def _without_overlaps(candidates: list[PiiFinding]) -> list[PiiFinding]:
    """Keep the most confident finding of each overlapping group (the longer one on a tie)."""
    ranked = sorted(candidates, key=lambda f: (-f.confidence, -(f.end - f.start), f.start))
    starts: list[int] = []  # kept findings, sorted by start; they never overlap each other
    kept: list[PiiFinding] = []
    for finding in ranked:
        index = bisect.bisect_left(starts, finding.start)
        if index > 0 and kept[index - 1].end > finding.start:
            continue
        if index < len(kept) and kept[index].start < finding.end:
            continue
        starts.insert(index, finding.start)
        kept.insert(index, finding)
    return kept
