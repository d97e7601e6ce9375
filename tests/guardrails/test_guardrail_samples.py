"""Precision and recall of the detectors on the labelled samples, held to the floors in
samples/floors.json. A change that costs accuracy fails here and says by how much.

Run with `-s` (or read the captured output) to see the table that docs/guardrails.md quotes.
"""

import json
from collections import Counter
from pathlib import Path

import pytest

from apps.guardrails.findings import InjectionKind, PiiType
from apps.guardrails.injection import scan_injection
from apps.guardrails.pii import detect_pii

SAMPLES = Path(__file__).parent / "samples"
PII_SETS = ["pii.jsonl", "pii_holdout.jsonl", "pii_fresh.jsonl"]
INJECTION_SETS = ["injection.jsonl", "injection_holdout.jsonl", "injection_fresh.jsonl"]


def load_samples(name: str) -> list[dict]:
    rows = [json.loads(line) for line in (SAMPLES / name).read_text(encoding="utf-8").splitlines() if line]
    for row in rows:
        for span in row["spans"]:
            assert row["text"][span["start"] : span["end"]] == span["text"], (row["id"], span)
    return rows


def spans_match(expected: dict, start: int, end: int) -> bool:
    """Same place: the two spans share at least half of the longer one."""
    shared = min(expected["end"], end) - max(expected["start"], start)
    return shared > 0 and shared >= 0.5 * max(expected["end"] - expected["start"], end - start)


def pii_counts(rows: list[dict]) -> dict[str, Counter]:
    """Span-level true positives, false positives and false negatives per PII type."""
    counts = {pii_type.value: Counter() for pii_type in PiiType}
    for row in rows:
        unmatched = list(row["spans"])
        for finding in detect_pii(row["text"]):
            hit = next(
                (
                    e
                    for e in unmatched
                    if e["type"] == finding.type and spans_match(e, finding.start, finding.end)
                ),
                None,
            )
            if hit is None:
                counts[finding.type]["fp"] += 1
            else:
                counts[finding.type]["tp"] += 1
                unmatched.remove(hit)
        for missed in unmatched:
            counts[missed["type"]]["fn"] += 1
    return counts


def injection_counts(rows: list[dict]) -> dict[str, Counter]:
    """Text-level counts per kind: does the text hold that kind of injection, and was one reported?"""
    counts = {kind.value: Counter() for kind in InjectionKind}
    for row in rows:
        expected = {span["kind"] for span in row["spans"]}
        found = {finding.kind.value for finding in scan_injection(row["text"])}
        for kind in counts:
            if kind in expected and kind in found:
                counts[kind]["tp"] += 1
            elif kind in found:
                counts[kind]["fp"] += 1
            elif kind in expected:
                counts[kind]["fn"] += 1
    return counts


def precision_recall(count: Counter) -> tuple[float, float]:
    predicted, actual = count["tp"] + count["fp"], count["tp"] + count["fn"]
    return (count["tp"] / predicted if predicted else 1.0, count["tp"] / actual if actual else 1.0)


def table(title: str, counts: dict[str, Counter]) -> str:
    lines = [title, f"{'type':<22}{'tp':>5}{'fp':>5}{'fn':>5}{'precision':>11}{'recall':>8}"]
    total = Counter()
    for name, count in counts.items():
        total.update(count)
        precision, recall = precision_recall(count)
        lines.append(
            f"{name:<22}{count['tp']:>5}{count['fp']:>5}{count['fn']:>5}{precision:>11.2f}{recall:>8.2f}"
        )
    precision, recall = precision_recall(total)
    lines.append(
        f"{'all (micro)':<22}{total['tp']:>5}{total['fp']:>5}{total['fn']:>5}{precision:>11.2f}{recall:>8.2f}"
    )
    return "\n".join(lines)


def floors() -> dict:
    return json.loads((SAMPLES / "floors.json").read_text(encoding="utf-8"))["floors"]


def counts_for(name: str) -> dict[str, Counter]:
    rows = load_samples(name)
    return pii_counts(rows) if name.startswith("pii") else injection_counts(rows)


def shortfalls(counts: dict[str, Counter], floor: dict) -> list[str]:
    problems = []
    total = sum(counts.values(), Counter())
    for name, count in [*counts.items(), ("all", total)]:
        precision, recall = precision_recall(count)
        if precision < floor[name]["precision"]:
            problems.append(f"{name}: precision {precision:.2f} < floor {floor[name]['precision']:.2f}")
        if recall < floor[name]["recall"]:
            problems.append(f"{name}: recall {recall:.2f} < floor {floor[name]['recall']:.2f}")
    return problems


def test_sample_sets_are_large_enough_and_hold_negatives():
    pii = [row for name in PII_SETS for row in load_samples(name)]
    injection = [row for name in INJECTION_SETS for row in load_samples(name)]
    assert len(pii) >= 150 and sum(not row["spans"] for row in pii) >= 50
    assert len(injection) >= 80 and sum(not row["spans"] for row in injection) >= 25


@pytest.mark.parametrize("name", PII_SETS + INJECTION_SETS)
def test_precision_and_recall_stay_above_floors(name, capsys):
    counts = counts_for(name)
    level = "span level" if name.startswith("pii") else "text level"
    with capsys.disabled():
        print(f"\n{table(f'{name} ({level}, min_confidence=0.5)', counts)}")
    assert not shortfalls(counts, floors()[name])


@pytest.mark.parametrize("name", PII_SETS + INJECTION_SETS)
def test_sample_ids_are_unique(name):
    ids = [row["id"] for row in load_samples(name)]
    assert len(ids) == len(set(ids))
