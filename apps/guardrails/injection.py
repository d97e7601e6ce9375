"""Prompt-injection heuristics for user-supplied text: `scan_injection(text)` and `injection_score`.

These are findings with a confidence, not a verdict. Wording can be paraphrased past any list of
phrases; use the findings to warn, to route to review, or as one signal among several.
"""

import re
from collections.abc import Iterable

from .findings import InjectionFinding, InjectionKind
from .hidden_text import find_encoded_instructions, find_hidden_text
from .injection_rules import INSTRUCTION_WORDS, PHRASE_RULES, SYSTEM_LINE
from .obfuscation import deobfuscate

__all__ = ["injection_score", "scan_injection"]

# A match lies within this many characters before and after an occurrence of one of its gates.
_REACH_BEFORE, _REACH_AFTER = 200, 300
_ADDRESSES_MODEL = re.compile(r"(?i)\b(?:you|your|must|always|never)\b")


def _rules_by_gate() -> dict[str, tuple[int, ...]]:
    by_gate: dict[str, list[int]] = {}
    for index, rule in enumerate(PHRASE_RULES):
        for gate in rule.gates:
            by_gate.setdefault(gate, []).append(index)
    return {gate: tuple(indexes) for gate, indexes in by_gate.items()}


# A rule matches only near one of its gates: a text runs just the rules whose gates it contains. Most texts
# contain few gates, and one membership test per gate is cheaper than one pass per rule (the gateway's
# input check runs on every request).
_RULES_BY_GATE = _rules_by_gate()


def scan_injection(text: str, *, min_confidence: float = 0.5) -> list[InjectionFinding]:
    """Injection findings in `text` ordered by position; overlapping findings of one kind are merged."""
    findings = [
        *_phrase_findings(text),
        *find_hidden_text(text),
        *find_encoded_instructions(text, _phrase_findings),
    ]
    return _merge_same_kind([finding for finding in findings if finding.confidence >= min_confidence])


def injection_score(findings: Iterable[InjectionFinding]) -> float:
    """The highest confidence among `findings`, 0.0 for none.

    A score for ranking and thresholds, not a verdict: 0.9 means "a phrase attackers use is
    present", not "this text is an attack" (a security article quotes the same phrases).
    """
    return max((finding.confidence for finding in findings), default=0.0)


def _phrase_findings(text: str) -> list[InjectionFinding]:
    normalised, origin = deobfuscate(text)
    lowered = normalised.lower()
    same_length = len(lowered) == len(normalised)  # lower() lengthens a few characters, such as "İ"
    findings = []
    conditional: list[tuple[InjectionFinding, InjectionKind]] = []  # (finding, kind that explains it away)
    gate_positions: dict[str, list[int]] = {}  # many rules share gates: find each one once
    gated = {index for gate, indexes in _RULES_BY_GATE.items() if gate in lowered for index in indexes}
    for rule in (PHRASE_RULES[index] for index in sorted(gated)):
        if same_length and rule.lowered_pattern is not None:
            pattern, subject = rule.lowered_pattern, lowered
        else:
            pattern, subject = rule.pattern, normalised
        matches = (
            match
            for start, end in _windows_around(lowered, rule.gates, gate_positions)
            for match in pattern.finditer(subject, start, end)
        )
        for match in matches:
            finding = _at_original(
                text, origin, match.start(), match.end(), rule.kind, rule.confidence, rule.explanation
            )
            if rule.unless:
                conditional.append((finding, rule.unless))
            else:
                findings.append(finding)
    for finding, unless in conditional:
        # "Override your system prompt" mentions the prompt because it overrides it, not to read it.
        if not any(other.kind == unless and _overlap(other, finding) for other in findings):
            findings.append(finding)
    for match in SYSTEM_LINE.finditer(normalised) if ("system" in lowered or "developer" in lowered) else ():
        if INSTRUCTION_WORDS.search(match.group("rest")) or _ADDRESSES_MODEL.search(match.group("rest")):
            findings.append(
                _at_original(
                    text,
                    origin,
                    match.start(),
                    match.start("rest"),
                    InjectionKind.ROLE_SPOOFING,
                    0.75,
                    "Starts a line as a system message followed by instructions.",
                )
            )
    return findings


def _at_original(
    text: str,
    origin: list[int],
    start: int,
    end: int,
    kind: InjectionKind,
    confidence: float,
    explanation: str,
) -> InjectionFinding:
    """A finding for `normalised[start:end]`, with offsets mapped back to the original text."""
    original_start = origin[start]
    original_end = origin[end - 1] + 1 if end > start else original_start
    return InjectionFinding(
        kind, original_start, original_end, text[original_start:original_end], confidence, explanation
    )


def _windows_around(
    lowered: str, gates: tuple[str, ...], cache: dict[str, list[int]]
) -> list[tuple[int, int]]:
    """Disjoint stretches of the text around the gate words, each ending at a line end so `$`
    keeps its meaning; a rule only needs to scan these, not the whole text."""
    spans = []
    for gate in gates:
        if gate not in cache:
            cache[gate] = _positions(lowered, gate)
        for position in cache[gate]:
            spans.append(
                (max(0, position - _REACH_BEFORE), _line_end(lowered, position + len(gate) + _REACH_AFTER))
            )
    spans.sort()
    windows: list[tuple[int, int]] = []
    for start, end in spans:
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(windows[-1][1], end))
        else:
            windows.append((start, end))
    return windows


def _positions(text: str, word: str) -> list[int]:
    positions = []
    position = text.find(word)
    while position != -1:
        positions.append(position)
        position = text.find(word, position + 1)
    return positions


def _line_end(text: str, position: int) -> int:
    newline = text.find("\n", position) if position < len(text) else -1
    return len(text) if newline == -1 else newline


def _overlap(a: InjectionFinding, b: InjectionFinding) -> bool:
    return a.start < b.end and b.start < a.end


def _merge_same_kind(findings: list[InjectionFinding]) -> list[InjectionFinding]:
    """Of overlapping findings of the same kind keep the most confident, so one phrase is one finding."""
    kept: list[InjectionFinding] = []
    for finding in sorted(findings, key=lambda f: (-f.confidence, f.start)):
        if not any(k.kind == finding.kind and _overlap(k, finding) for k in kept):
            kept.append(finding)
    return sorted(kept, key=lambda f: (f.start, f.end, f.kind))
