"""Prompt-injection heuristics for user-supplied text: `scan_injection(text)` and `injection_score`.

These are findings with a confidence, not a verdict. Wording can be paraphrased past any list of
phrases; use the findings to warn, to route to review, or as one signal among several.
"""

import re
from collections.abc import Iterable

from .findings import InjectionFinding, InjectionKind
from .hidden_text import find_encoded_instructions, find_hidden_text
from .obfuscation import deobfuscate
from .injection_rules import INSTRUCTION_WORDS, PHRASE_RULES, SYSTEM_LINE

__all__ = ["injection_score", "scan_injection"]



def scan_injection(text: str, *, min_confidence: float = 0.5) -> list[InjectionFinding]:
    """Injection findings in `text` ordered by position; overlapping findings of one kind are merged."""
    findings = [*_phrase_findings(text), *find_hidden_text(text), *find_encoded_instructions(text, _phrase_findings)]
    return _merge_same_kind([finding for finding in findings if finding.confidence >= min_confidence])


def injection_score(findings: Iterable[InjectionFinding]) -> float:
    """The highest confidence among `findings`, 0.0 for none.

    A score for ranking and thresholds, not a verdict: 0.9 means "a phrase attackers use is
    present", not "this text is an attack" (a security article quotes the same phrases).
    """
    return max((finding.confidence for finding in findings), default=0.0)


def _phrase_findings(text: str) -> list[InjectionFinding]:
    normalised, origin = deobfuscate(text)
    findings = []
    conditional = []  # (finding, kind that explains it away)
    for rule in PHRASE_RULES:
        for match in rule.pattern.finditer(normalised):
            finding = _at_original(text, origin, match.start(), match.end(), rule.kind, rule.confidence, rule.explanation)
            (conditional.append((finding, rule.unless)) if rule.unless else findings.append(finding))
    for finding, unless in conditional:
        # "Override your system prompt" mentions the prompt because it overrides it, not to read it.
        if not any(other.kind == unless and _overlap(other, finding) for other in findings):
            findings.append(finding)
    for match in SYSTEM_LINE.finditer(normalised):
        if INSTRUCTION_WORDS.search(match.group("rest")) or re.search(r"(?i)\b(?:you|your|must|always|never)\b", match.group("rest")):
            findings.append(
                _at_original(text, origin, match.start(), match.start("rest"), InjectionKind.ROLE_SPOOFING, 0.75,
                             "Starts a line as a system message followed by instructions.")
            )
    return findings


def _at_original(text, origin, start, end, kind, confidence, explanation) -> InjectionFinding:
    original_start, original_end = origin[start], origin[end - 1] + 1 if end > start else origin[start]
    return InjectionFinding(kind, original_start, original_end, text[original_start:original_end], confidence, explanation)


def _overlap(a: InjectionFinding, b: InjectionFinding) -> bool:
    return a.start < b.end and b.start < a.end


def _merge_same_kind(findings: list[InjectionFinding]) -> list[InjectionFinding]:
    """Of overlapping findings of the same kind keep the most confident, so one phrase is one finding."""
    kept: list[InjectionFinding] = []
    for finding in sorted(findings, key=lambda f: (-f.confidence, f.start)):
        if not any(k.kind == finding.kind and _overlap(k, finding) for k in kept):
            kept.append(finding)
    return sorted(kept, key=lambda f: (f.start, f.end, f.kind))
