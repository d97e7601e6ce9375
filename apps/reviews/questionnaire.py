"""The versioned intake questionnaire: loading, visibility (progressive disclosure), validation, JSON Schema.

Version 1 ships as `questionnaire/v1.json`; admins publish later versions as `QuestionnaireVersion` rows
(the highest number is current: `selectors.questionnaire_current()`; this module reads no table). Field ids
are stable across versions: rules and stored answers use them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.core.exceptions import ValidationError

BUNDLED = Path(__file__).parent / "questionnaire"
TYPES = ("single", "multi", "boolean", "text", "number")
TEXT_MAX = 4000


@dataclass(frozen=True)
class Questionnaire:
    version: int
    schema: dict

    @property
    def sections(self) -> list[dict]:
        return self.schema.get("sections", [])

    @property
    def questions(self) -> list[dict]:
        return [q for section in self.sections for q in section.get("questions", [])]

    def question(self, field_id: str) -> dict | None:
        return next((q for q in self.questions if q["id"] == field_id), None)


def bundled(version: int = 1) -> Questionnaire:
    schema = json.loads((BUNDLED / f"v{version}.json").read_text())
    return Questionnaire(version=schema["version"], schema=schema)


def has_bundled(version: int) -> bool:
    return (BUNDLED / f"v{version}.json").exists()


def check_schema(schema: dict) -> None:
    """Refuse a questionnaire an admin could not fill in: unknown types, duplicate ids, dangling show_if."""
    if not isinstance(schema, dict) or not isinstance(schema.get("sections"), list):
        raise ValidationError("A questionnaire is an object with a list of 'sections'.")
    seen: set[str] = set()
    for section in schema["sections"]:
        for q in section.get("questions", []):
            qid = q.get("id")
            if not qid or not isinstance(qid, str):
                raise ValidationError("Every question needs a string 'id'.")
            if qid in seen:
                raise ValidationError(f"Question id {qid!r} appears twice.")
            seen.add(qid)
            if q.get("type") not in TYPES:
                raise ValidationError(f"Question {qid!r}: type must be one of {', '.join(TYPES)}.")
            if q["type"] in ("single", "multi") and not q.get("options"):
                raise ValidationError(f"Question {qid!r} needs options.")
    for q in (q for s in schema["sections"] for q in s.get("questions", [])):
        for dep in (q.get("show_if") or {}):
            if dep not in seen:
                raise ValidationError(f"Question {q['id']!r} depends on unknown question {dep!r}.")


def is_visible(question: dict, answers: dict) -> bool:
    """A follow-up shows only when each field it depends on has one of the listed values."""
    for field_id, values in (question.get("show_if") or {}).items():
        answer = answers.get(field_id)
        if isinstance(answer, list):
            if not set(answer) & set(values):
                return False
        elif answer not in values:
            return False
    return True


def _coerce(question: dict, raw):
    kind = question["type"]
    options = [o[0] for o in question.get("options", [])]
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "yes", "on", "1"):
            return True
        if isinstance(raw, str) and raw.lower() in ("false", "no", "off", "0"):
            return False
        raise ValidationError("Answer yes or no.")
    if kind == "single":
        if raw not in options:
            raise ValidationError(f"Choose one of: {', '.join(options)}.")
        return raw
    if kind == "multi":
        values = [raw] if isinstance(raw, str) else raw
        if not isinstance(values, list) or any(v not in options for v in values):
            raise ValidationError(f"Choose among: {', '.join(options)}.")
        values = list(dict.fromkeys(values))
        if "none" in values and len(values) > 1:
            raise ValidationError("'None' cannot be combined with other choices.")
        return values
    if kind == "number":
        try:
            number = Decimal(str(raw))
        except (InvalidOperation, ValueError):
            raise ValidationError("Enter a number.") from None
        if not number.is_finite() or ("min" in question and number < Decimal(str(question["min"]))):
            raise ValidationError(f"Enter a number of at least {question.get('min', 0)}.")
        return float(number)
    text = str(raw).strip()
    if len(text) > TEXT_MAX:
        raise ValidationError(f"Keep it under {TEXT_MAX} characters.")
    return text


def _empty(value) -> bool:
    return value is None or value == "" or value == []


def clean_answers(questionnaire: Questionnaire, answers: dict, *, complete: bool) -> dict:
    """Validated answers with hidden follow-ups dropped. `complete`: every visible required question answered.

    Raises ValidationError({field_id: [message]}) naming each bad field; nothing is half-accepted.
    """
    if not isinstance(answers, dict):
        raise ValidationError({"answers": ["Answers must be an object of {field id: value}."]})
    errors: dict[str, list[str]] = {}
    known = {q["id"] for q in questionnaire.questions}
    for unknown in sorted(set(answers) - known):
        errors[unknown] = [f"Unknown question id {unknown!r} (questionnaire v{questionnaire.version})."]
    cleaned: dict = {}
    for q in questionnaire.questions:  # in order, so a follow-up sees the cleaned answer it depends on
        raw = answers.get(q["id"])
        if _empty(raw):
            continue
        try:
            cleaned[q["id"]] = _coerce(q, raw)
        except ValidationError as exc:
            errors[q["id"]] = exc.messages
    for q in questionnaire.questions:
        if not is_visible(q, cleaned):
            cleaned.pop(q["id"], None)
        elif complete and q.get("required") and _empty(cleaned.get(q["id"])) and q["id"] not in errors:
            errors[q["id"]] = ["This question needs an answer before you submit."]
    if errors:
        raise ValidationError(errors)
    return cleaned


def json_schema(questionnaire: Questionnaire) -> dict:
    """The questionnaire as JSON Schema (2020-12); `x-` keys carry labels, sections and follow-up rules."""
    props: dict = {}
    for section in questionnaire.sections:
        for q in section.get("questions", []):
            kind = q["type"]
            prop: dict = {"title": q["label"], "x-section": section["title"], "x-type": kind}
            if kind == "boolean":
                prop["type"] = "boolean"
            elif kind == "number":
                prop["type"] = "number"
                if "min" in q:
                    prop["minimum"] = q["min"]
            elif kind == "text":
                prop.update(type="string", maxLength=TEXT_MAX)
            elif kind == "single":
                prop.update(type="string", enum=[o[0] for o in q["options"]])
            else:
                prop.update(type="array", uniqueItems=True, items={"type": "string", "enum": [o[0] for o in q["options"]]})
            if q.get("options"):
                prop["x-option-labels"] = dict(q["options"])
            if q.get("help"):
                prop["description"] = q["help"]
            if q.get("show_if"):
                prop["x-show-if"] = q["show_if"]
            prop["x-required"] = bool(q.get("required"))
            props[q["id"]] = prop
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:genai-portal:use-case-intake:v{questionnaire.version}",
        "title": questionnaire.schema.get("title", "Use-case intake"),
        "type": "object",
        "additionalProperties": False,
        "x-version": questionnaire.version,
        "properties": props,
    }


def display(questionnaire: Questionnaire, answers: dict) -> list[dict]:
    """[{section, rows: [{id, label, value}]}] with option labels, for pages and reports."""
    out = []
    for section in questionnaire.sections:
        rows = []
        for q in section.get("questions", []):
            if q["id"] not in answers:
                continue
            value = answers[q["id"]]
            labels = dict(q.get("options", []))
            if isinstance(value, list):
                shown = ", ".join(labels.get(v, v) for v in value)
            elif isinstance(value, bool):
                shown = "Yes" if value else "No"
            else:
                shown = labels.get(value, value)
            rows.append({"id": q["id"], "label": q["label"], "value": shown})
        if rows:
            out.append({"section": section["title"], "rows": rows})
    return out


def answers_diff(before: dict, after: dict) -> list[dict]:
    """[{id, before, after}] for the fields that changed between two submissions."""
    keys = sorted(set(before) | set(after))
    return [{"id": k, "before": before.get(k), "after": after.get(k)} for k in keys if before.get(k) != after.get(k)]
