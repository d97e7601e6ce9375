"""How the guardrails spend their time, checked without timing anything (the project forbids timings
in tests): regexes are compiled at import, expensive patterns run only where a cheap test points,
inputs that make naive regexes backtrack are handled, and a 100 KB text is scanned like its parts.

Measured speeds are in docs/guardrails.md.
"""

import json
import re
from pathlib import Path

import pytest

from apps.guardrails import detect_pii, lint_template, redact, scan_injection
from apps.guardrails.pii import contact, credentials

SAMPLES = Path(__file__).parent / "samples"


def sample_text(size: int = 100_000) -> str:
    texts = [
        json.loads(line)["text"] for line in (SAMPLES / "pii.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    texts += [
        json.loads(line)["text"]
        for line in (SAMPLES / "injection.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    joined = "\n".join(texts)
    return (joined * (size // len(joined) + 1))[:size]


class _Forbidden:
    def __init__(self, what: str):
        self.what = what

    def __call__(self, *args, **kwargs):
        raise AssertionError(f"{self.what} was called while scanning")

    def __getattr__(self, name):
        return self


def test_no_regex_is_compiled_or_looked_up_while_scanning(monkeypatch):
    text = sample_text(20_000)
    template = "Key AKIAIOSFODNN7EXAMPLE\n<q>{{ question }}</q>\n{% for d in documents %}{{ d }}{% endfor %}"
    for name in ("compile", "sub", "match", "search", "fullmatch", "finditer", "findall", "split"):
        monkeypatch.setattr(re, name, _Forbidden(f"re.{name}"))
    detect_pii(text)
    redact(text)
    scan_injection(text)
    lint_template(template, declared_variables={"question"}, used_variables={"question", "documents"})


def test_the_address_pattern_runs_only_where_there_is_an_at_sign(monkeypatch):
    monkeypatch.setattr(contact, "_EMAIL", _Forbidden("the e-mail pattern"))
    assert (
        detect_pii("No addresses here, only 2024-03-15 and dot-separated words." * 2000, types=["EMAIL"])
        == []
    )


def test_secret_patterns_run_only_when_their_prefix_occurs(monkeypatch):
    forbidden = tuple(
        secret._replace(pattern=_Forbidden(secret.name)) for secret in credentials._SECRET_PATTERNS
    )
    monkeypatch.setattr(credentials, "_SECRET_PATTERNS", forbidden)
    assert detect_pii("Quarterly numbers improved across all regions. " * 2000, types=["SECRET"]) == []


def test_phrase_rules_scan_nothing_when_their_words_are_absent(monkeypatch):
    from apps.guardrails import injection

    rules = tuple(
        rule._replace(pattern=_Forbidden("rule"), lowered_pattern=_Forbidden("rule"))
        for rule in injection.PHRASE_RULES
    )
    monkeypatch.setattr(injection, "PHRASE_RULES", rules)
    assert scan_injection("Quarterly numbers improved across all regions. " * 2000) == []


@pytest.mark.parametrize(
    "text",
    [
        "1234567890" * 10_000,
        "a@" * 50_000,
        "a:" * 50_000,
        "1." * 50_000,
        "1 " * 50_000,
        "+1 " * 33_000,
        "<!--" * 25_000,
        '<div style="display:none">x' * 4_000,
        "QUJDRGVm" * 12_500,
        "\u200b" * 100_000,
        "a " * 50_000,
        "h3ll0 w0rld " * 9_000,
    ],
    ids=[
        "digits",
        "at-signs",
        "colons",
        "dots",
        "spaced-digits",
        "plus-groups",
        "open-comments",
        "unclosed-hidden-divs",
        "base64-like",
        "zero-width",
        "spaced-letters",
        "leetspeak",
    ],
)
def test_inputs_that_make_naive_regexes_backtrack_are_scanned(text):
    # These finish in tens of milliseconds; a quadratic or exponential pattern would not finish at all.
    assert isinstance(detect_pii(text), list)
    assert isinstance(scan_injection(text), list)


def test_a_100_kb_text_gives_the_findings_of_its_parts():
    part = sample_text(25_000).rsplit("\n", 1)[0] + "\n"
    whole = part * 4
    per_part = [(f.type, f.start, f.text) for f in detect_pii(part)]
    expected = [
        (pii_type, start + k * len(part), text) for k in range(4) for pii_type, start, text in per_part
    ]
    assert len(whole) >= 99_000
    assert [(f.type, f.start, f.text) for f in detect_pii(whole)] == expected
