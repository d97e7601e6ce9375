"""Diff of two versions: the template side by side with changed lines (and the changed characters in them)
marked, and the model config, variables and schema compared key by key."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field

from apps.prompts.models import PromptKind, PromptVersion


@dataclass
class Segment:
    text: str
    changed: bool


@dataclass
class DiffRow:
    tag: str  # equal | replace | delete | insert
    left_no: int | None
    left: list[Segment] | None
    right_no: int | None
    right: list[Segment] | None

    def as_dict(self) -> dict:
        join = lambda segs: None if segs is None else "".join(s.text for s in segs)  # noqa: E731
        return {"tag": self.tag, "left_line": self.left_no, "left": join(self.left), "right_line": self.right_no,
                "right": join(self.right)}


@dataclass
class KeyDiff:
    key: str
    left: object
    right: object

    @property
    def changed(self) -> bool:
        return self.left != self.right

    def as_dict(self) -> dict:
        return {"key": self.key, "left": self.left, "right": self.right, "changed": self.changed}


@dataclass
class VersionDiff:
    left: PromptVersion | None
    right: PromptVersion
    rows: list[DiffRow] = field(default_factory=list)
    config: list[KeyDiff] = field(default_factory=list)

    @property
    def changed_lines(self) -> int:
        return sum(1 for r in self.rows if r.tag != "equal")

    @property
    def config_changed(self) -> list[KeyDiff]:
        return [k for k in self.config if k.changed]

    @property
    def identical(self) -> bool:
        return not self.changed_lines and not self.config_changed

    def as_dict(self) -> dict:
        return {"left": self.left.number if self.left else None, "right": self.right.number,
                "changed_lines": self.changed_lines, "template": [r.as_dict() for r in self.rows],
                "config": [k.as_dict() for k in self.config]}


def version_text(version: PromptVersion | None) -> str:
    if version is None:
        return ""
    if version.prompt.kind == PromptKind.CHAT:
        return "\n".join(f"[{m.get('role')}]\n{m.get('content', '')}" for m in version.messages)
    return version.template


def _segments(a: str, b: str) -> tuple[list[Segment], list[Segment]]:
    left, right = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if i2 > i1:
            left.append(Segment(a[i1:i2], op != "equal"))
        if j2 > j1:
            right.append(Segment(b[j1:j2], op != "equal"))
    return left, right


def side_by_side(a: str, b: str) -> list[DiffRow]:
    left_lines, right_lines = a.splitlines(), b.splitlines()
    rows = []
    matcher = difflib.SequenceMatcher(None, left_lines, right_lines, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for k in range(i2 - i1):
                text = left_lines[i1 + k]
                rows.append(DiffRow("equal", i1 + k + 1, [Segment(text, False)], j1 + k + 1, [Segment(text, False)]))
            continue
        span = max(i2 - i1, j2 - j1)
        for k in range(span):
            li, rj = i1 + k, j1 + k
            left = left_lines[li] if li < i2 else None
            right = right_lines[rj] if rj < j2 else None
            if left is not None and right is not None:
                lsegs, rsegs = _segments(left, right)
                rows.append(DiffRow("replace", li + 1, lsegs, rj + 1, rsegs))
            elif left is not None:
                rows.append(DiffRow("delete", li + 1, [Segment(left, True)], None, None))
            else:
                rows.append(DiffRow("insert", None, None, rj + 1, [Segment(right, True)]))
    return rows


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict) and value:
        out = {}
        for key in sorted(value):
            out.update(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list | dict):
        return {prefix: json.dumps(value, sort_keys=True)} if prefix else {}
    return {prefix: value} if prefix else {}


def key_diff(left: dict, right: dict) -> list[KeyDiff]:
    a, b = _flatten(left or {}), _flatten(right or {})
    return [KeyDiff(key, a.get(key), b.get(key)) for key in sorted(set(a) | set(b))]


def version_diff(left: PromptVersion | None, right: PromptVersion) -> VersionDiff:
    config = key_diff({"config": left.config if left else {}, "variables": ", ".join(left.variables) if left else "",
                       "variables_schema": (left.variables_schema or {}) if left else {}},
                      {"config": right.config, "variables": ", ".join(right.variables),
                       "variables_schema": right.variables_schema or {}})
    return VersionDiff(left, right, side_by_side(version_text(left), version_text(right)), config)
