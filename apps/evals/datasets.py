"""Golden datasets: creation, immutable revisions, item edits, streamed CSV/JSONL import (validated first)
and export.

Every change makes a new revision: items added in it get `added_in = N`, items removed or replaced get
`removed_in = N`. A revision is thus the set of items with added_in <= N < removed_in, and nothing already
written ever changes. Imports read the file twice — once to validate every row, once to write — so memory
stays flat whatever the file's size, and nothing is written unless every row passes (or the caller chose
to import only the valid rows).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from apps.accounts.permissions import Action, require, user_of
from apps.audit.services import audit_record
from apps.core.safe_input import MAX_JSON_DEPTH, find_bad_text
from apps.evals import conf
from apps.evals.models import Dataset, DatasetItem, DatasetRevision, ItemSource
from apps.prompts.services import actor_label

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*(?:/[a-z0-9][a-z0-9._-]*)*$")
TAG_RE = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,39}$")
KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")
ITEM_FIELDS = ("id", "inputs", "expected", "contexts", "tags", "metadata")
MAX_TAGS = 20
MAX_CONTEXTS = 50
MAX_TEXT = 100_000
MAX_INPUT_BYTES = 200_000
MAX_REPORTED_ERRORS = 500
BATCH = 2000
CSV_FIELD_LIMIT = 10 * 1024 * 1024


def max_rows() -> int:
    return int(conf.get("EVALS_IMPORT_MAX_ROWS"))


# --- datasets ---------------------------------------------------------------------------------------------

def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the dataset a name, e.g. support/faq-golden."})
    if len(name) > 200 or not NAME_RE.match(name):
        raise ValidationError({"name": "Use lower-case letters, digits, '.', '_' and '-' in segments separated "
                                       "by '/', e.g. support/faq-golden."})
    return name


def _clean_input_names(names) -> list[str]:
    if isinstance(names, str):
        names = names.replace(",", " ").split()
    cleaned = []
    for name in names or []:
        name = str(name).strip()
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$", name):
            raise ValidationError({"input_names": f"{name!r} is not a variable name (letters, digits, _)."})
        if name not in cleaned:
            cleaned.append(name)
    return cleaned


@transaction.atomic
def dataset_create(*, team, name: str, description: str = "", input_names=(), shared: bool = False,
                   actor=None) -> Dataset:
    name = _clean_name(name)
    input_names = _clean_input_names(input_names)
    if Dataset.objects.filter(name=name).exists():
        raise ValidationError({"name": f"A dataset named {name!r} already exists."})
    user = user_of(actor)
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(team=team, name=name, description=description or "",
                                             input_names=input_names, shared=shared, created_by=user)
    except IntegrityError:
        raise ValidationError({"name": f"A dataset named {name!r} already exists."})
    audit_record(action="eval.dataset.create", obj=dataset, team=team,
                 changes={"name": name, "team": team.slug if team else None, "shared": shared,
                          "input_names": input_names}, actor=actor)
    return dataset


@transaction.atomic
def dataset_update(*, dataset: Dataset, description: str | None = None, input_names=None, shared=None,
                   actor=None) -> Dataset:
    dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
    before = {"description": dataset.description, "input_names": list(dataset.input_names),
              "shared": dataset.shared}
    if description is not None:
        dataset.description = description
    if input_names is not None:
        dataset.input_names = _clean_input_names(input_names)
    if shared is not None:
        dataset.shared = bool(shared)
    after = {"description": dataset.description, "input_names": list(dataset.input_names),
             "shared": dataset.shared}
    if before == after:
        return dataset
    dataset.updated_at = timezone.now()
    dataset.save(update_fields=["description", "input_names", "shared", "updated_at"])
    audit_record(action="eval.dataset.update", obj=dataset, team=dataset.team,
                 changes={k: [before[k], after[k]] for k in before if before[k] != after[k]}, actor=actor)
    return dataset


# --- validating one item ------------------------------------------------------------------------------------

@dataclass
class RowError:
    line: int
    field: str
    message: str

    def as_dict(self) -> dict:
        return {"line": self.line, "field": self.field, "message": self.message}

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}" if self.field else f"line {self.line}: {self.message}"


def clean_item(raw: dict, *, input_names: Iterable[str] = (), line: int = 0) -> tuple[dict | None, list[RowError]]:
    """Check one item (as a dict of the JSONL fields); return (clean item, []) or (None, errors by field)."""
    errors: list[RowError] = []

    def err(field_name: str, message: str) -> None:
        errors.append(RowError(line, field_name, message))

    if not isinstance(raw, dict):
        return None, [RowError(line, "", "each line must be a JSON object like {\"inputs\": {…}, \"expected\": …}")]
    bad_text = find_bad_text(raw, max_depth=MAX_JSON_DEPTH)
    if bad_text:  # PostgreSQL refuses NUL and lone surrogates in text and jsonb: name the field, not a 500
        where, problem = bad_text
        return None, [RowError(line, where.split(".")[0].split("[")[0], f"{where} {problem}")]
    unknown = sorted(set(raw) - set(ITEM_FIELDS))
    if unknown:
        err(unknown[0], f"unknown field(s) {', '.join(unknown)}; use {', '.join(ITEM_FIELDS)}")
    key = raw.get("id")
    if key in (None, ""):
        key = ""
    elif isinstance(key, int) and not isinstance(key, bool):
        key = str(key)
    if key and (not isinstance(key, str) or not KEY_RE.match(key)):
        err("id", "1-100 letters, digits, '_', '.', ':', '/' or '-', starting with a letter or digit")
    inputs = raw.get("inputs", {})
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        err("inputs", "must be a JSON object of variable name → value")
    else:
        bad = [k for k in inputs if not isinstance(k, str) or not k]
        if bad:
            err("inputs", "variable names must be non-empty strings")
        missing = [n for n in input_names if n not in inputs]
        if missing:
            err("inputs", f"missing {', '.join(repr(m) for m in missing)} (the dataset requires "
                          f"{', '.join(input_names)})")
        if len(json.dumps(inputs, ensure_ascii=False)) > MAX_INPUT_BYTES:
            err("inputs", f"larger than {MAX_INPUT_BYTES:,} characters")
    expected = raw.get("expected")
    if expected is not None and not isinstance(expected, str):
        if isinstance(expected, int | float | bool | dict | list):
            expected = json.dumps(expected, ensure_ascii=False)  # structured references are kept as JSON text
        else:
            err("expected", "must be text or null")
    if isinstance(expected, str) and len(expected) > MAX_TEXT:
        err("expected", f"longer than {MAX_TEXT:,} characters")
    contexts = raw.get("contexts", [])
    if contexts is None:
        contexts = []
    if isinstance(contexts, str):
        contexts = [contexts]
    if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
        err("contexts", "must be a list of passages (strings)")
    elif len(contexts) > MAX_CONTEXTS:
        err("contexts", f"at most {MAX_CONTEXTS} passages")
    elif any(len(c) > MAX_TEXT for c in contexts):
        err("contexts", f"a passage is longer than {MAX_TEXT:,} characters")
    tags = raw.get("tags", [])
    if tags is None:
        tags = []
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        err("tags", "must be a list of tags (or a comma-separated string)")
    else:
        tags = list(dict.fromkeys(t.strip().lower() for t in tags if t.strip()))
        bad_tags = [t for t in tags if not TAG_RE.match(t)]
        if bad_tags:
            err("tags", f"{bad_tags[0]!r} is not a tag (lower-case letters, digits, '-', '_', '.', ':', ≤ 40)")
        elif len(tags) > MAX_TAGS:
            err("tags", f"at most {MAX_TAGS} tags")
    metadata = raw.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        err("metadata", "must be a JSON object")
    if errors:
        return None, errors
    return {"key": key, "inputs": inputs, "expected": expected, "contexts": contexts, "tags": tags,
            "metadata": metadata}, []


# --- reading files -------------------------------------------------------------------------------------------

class _FatalRow(Exception):
    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


@contextlib.contextmanager
def _text_stream(file):
    """The file as text (UTF-8, BOM allowed), from the start; the caller's file is left open."""
    if hasattr(file, "seek"):
        file.seek(0)
    raw = getattr(file, "file", file)
    if isinstance(raw, io.TextIOBase):
        yield raw
        return
    wrapper = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    try:
        yield wrapper
    finally:
        wrapper.detach()


def _csv_value_to_json(value: str, field_name: str):
    value = value.strip()
    if not value:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})")
    except RecursionError:
        raise ValueError(f"nested too deeply (at most {MAX_JSON_DEPTH} levels)")


def read_csv(file) -> Iterator[tuple[int, dict | None, list[RowError]]]:
    """(line, raw item dict, errors) per data row; the header defines the columns (see docs/evals.md)."""
    csv.field_size_limit(CSV_FIELD_LIMIT)
    with _text_stream(file) as stream:
        yield from _read_csv(csv.reader(stream))


def _read_csv(reader) -> Iterator[tuple[int, dict | None, list[RowError]]]:
    try:
        header = next(reader)
    except StopIteration:
        return
    except (csv.Error, UnicodeDecodeError) as exc:
        raise _FatalRow(1, f"cannot read the header: {exc}")
    header = [h.strip() for h in header]
    if not any(header):
        raise _FatalRow(1, "the first line must name the columns (e.g. question,expected,tags)")
    duplicates = sorted({h for h in header if h and header.count(h) > 1})
    if duplicates:
        raise _FatalRow(1, f"duplicate column(s): {', '.join(duplicates)}")
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            raise _FatalRow(start, f"cannot read the row: {exc}")
        line = start
        start = reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            yield line, None, [RowError(line, "", f"{len(row)} value(s) for {len(header)} column(s)")]
            continue
        raw: dict = {}
        inputs: dict = {}
        errors: list[RowError] = []
        for column, cell in zip(header, row, strict=True):
            if column in ("id", "expected"):
                if cell != "" or column == "expected" and cell:
                    raw[column] = cell
            elif column in ("inputs", "metadata"):
                try:
                    value = _csv_value_to_json(cell, column)
                except ValueError as exc:
                    errors.append(RowError(line, column, str(exc)))
                    continue
                if column == "inputs" and value is not None:
                    if isinstance(value, dict):
                        inputs = {**value, **inputs}
                    else:
                        errors.append(RowError(line, "inputs", "must be a JSON object"))
                elif value is not None:
                    raw[column] = value
            elif column == "contexts":
                text = cell.strip()
                if text.startswith("["):
                    try:
                        raw["contexts"] = json.loads(text)
                    except json.JSONDecodeError as exc:
                        errors.append(RowError(line, "contexts", f"not valid JSON ({exc.msg})"))
                    except RecursionError:
                        errors.append(RowError(line, "contexts", "nested too deeply"))
                elif text:
                    raw["contexts"] = [text]
            elif column == "tags":
                raw["tags"] = cell
            elif column:
                inputs[column] = cell
        raw["inputs"] = inputs
        yield line, (None if errors else raw), errors


def read_jsonl(file) -> Iterator[tuple[int, dict | None, list[RowError]]]:
    with _text_stream(file) as stream:
        yield from _read_jsonl(stream)


def _read_jsonl(stream) -> Iterator[tuple[int, dict | None, list[RowError]]]:
    line = 0
    while True:
        try:
            text = stream.readline()
        except UnicodeDecodeError as exc:
            raise _FatalRow(line + 1, f"not UTF-8 text: {exc}")
        if not text:
            return
        line += 1
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield line, None, [RowError(line, "", f"not valid JSON ({exc.msg} at column {exc.colno})")]
            continue
        except RecursionError:
            yield line, None, [RowError(line, "", f"nested too deeply (at most {MAX_JSON_DEPTH} levels)")]
            continue
        yield line, value, []


READERS = {"csv": read_csv, "jsonl": read_jsonl}


def guess_format(filename: str) -> str | None:
    lower = (filename or "").lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return None


@dataclass
class ImportReport:
    format: str
    rows: int = 0
    valid_rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    error_rows: int = 0
    truncated: bool = False
    written: bool = False
    revision: int | None = None
    fatal: str = ""

    @property
    def ok(self) -> bool:
        return not self.error_rows and not self.fatal

    def as_dict(self) -> dict:
        return {"format": self.format, "rows": self.rows, "valid_rows": self.valid_rows,
                "error_rows": self.error_rows, "errors": [e.as_dict() for e in self.errors],
                "errors_truncated": self.truncated, "written": self.written, "revision": self.revision,
                "fatal": self.fatal}


def _validated_rows(file, fmt: str, dataset: Dataset, existing_keys: set[str], report: ImportReport,
                    mode: str) -> Iterator[tuple[int, dict | None]]:
    """Yield (line, clean item or None) and fill `report` with counts and errors."""
    seen: set[str] = set()
    limit = max_rows()
    for line, raw, errors in READERS[fmt](file):
        report.rows += 1
        if report.rows > limit:
            raise _FatalRow(line, f"more than {limit:,} rows: split the file")
        item = None
        if not errors:
            item, errors = clean_item(raw, input_names=dataset.input_names, line=line)
        if item is not None and item["key"]:
            if item["key"] in seen:
                errors = [RowError(line, "id", f"{item['key']!r} appears twice in the file")]
                item = None
            elif mode == "append" and item["key"] in existing_keys:
                errors = [RowError(line, "id", f"{item['key']!r} is already in the dataset (import with "
                                               "'replace', or edit that item)")]
                item = None
            else:
                seen.add(item["key"])
        if errors:
            report.error_rows += 1
            for error in errors:
                if len(report.errors) < MAX_REPORTED_ERRORS:
                    report.errors.append(error)
                else:
                    report.truncated = True
        else:
            report.valid_rows += 1
        yield line, item


def _current_keys(dataset: Dataset) -> set[str]:
    if not dataset.latest_revision:
        return set()
    return set(DatasetItem.objects.at_revision(dataset.pk, dataset.latest_revision).values_list("key", flat=True))


def dataset_import(*, dataset: Dataset, file, fmt: str, mode: str = "append", import_valid: bool = False,
                   actor=None, message: str = "") -> ImportReport:
    """Validate every row; write a new revision only if all pass (or `import_valid`: the valid ones)."""
    if fmt not in READERS:
        raise ValidationError({"file": "Upload a .csv or .jsonl file."})
    if mode not in ("append", "replace"):
        raise ValidationError({"mode": "Choose append or replace."})
    report = ImportReport(format=fmt)
    existing = _current_keys(dataset)
    try:
        for _ in _validated_rows(file, fmt, dataset, existing, report, mode):
            pass
    except _FatalRow as exc:
        report.fatal = f"line {exc.line}: {exc.message}"
        return report
    if report.valid_rows == 0 and not report.fatal:
        if not report.error_rows:
            report.fatal = "the file has no rows"
        return report
    if report.error_rows and not import_valid:
        return report
    revision = _import_write(dataset, file, fmt, mode, existing, actor, message)
    report.written = True
    report.revision = revision.number
    return report


@transaction.atomic
def _import_write(dataset: Dataset, file, fmt: str, mode: str, existing: set[str], actor, message: str
                  ) -> DatasetRevision:
    dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
    number = dataset.latest_revision + 1
    removed = 0
    if mode == "replace" and dataset.latest_revision:
        removed = (DatasetItem.objects.at_revision(dataset.pk, dataset.latest_revision)
                   .update(removed_in=number))
        existing = set()
    position = _next_position(dataset)
    batch: list[DatasetItem] = []
    added = 0
    scratch = ImportReport(format=fmt)
    for line, item in _validated_rows(file, fmt, dataset, existing, scratch, mode):
        if item is None:
            continue
        position += 1
        batch.append(_item_row(dataset, number, position, item, ItemSource.IMPORT, f"line {line}"))
        if len(batch) >= BATCH:
            DatasetItem.objects.bulk_create(batch)
            added += len(batch)
            batch = []
    if batch:
        DatasetItem.objects.bulk_create(batch)
        added += len(batch)
    return _finish_revision(dataset, number, source=ItemSource.IMPORT, added=added, removed=removed, actor=actor,
                            message=message or f"import ({fmt}, {mode}): {added} item(s)")


def _next_position(dataset: Dataset) -> int:
    return DatasetItem.objects.filter(dataset=dataset).aggregate(m=Max("position"))["m"] or 0


def _item_row(dataset: Dataset, number: int, position: int, item: dict, source: str, source_ref: str = ""
              ) -> DatasetItem:
    return DatasetItem(dataset=dataset, key=item.get("key") or uuid.uuid4().hex[:12], added_in=number,
                       position=position, inputs=item["inputs"], expected=item.get("expected"),
                       contexts=item.get("contexts") or [], tags=item.get("tags") or [], source=source,
                       source_ref=source_ref[:200], metadata=item.get("metadata") or {})


def _finish_revision(dataset: Dataset, number: int, *, source: str, added: int, removed: int, actor,
                     message: str) -> DatasetRevision:
    count = DatasetItem.objects.at_revision(dataset.pk, number).count()
    revision = DatasetRevision.objects.create(dataset=dataset, number=number, message=message[:500], source=source,
                                              item_count=count, added=added, removed=removed,
                                              created_by_label=actor_label(actor))
    dataset.latest_revision = number
    dataset.updated_at = timezone.now()
    dataset.save(update_fields=["latest_revision", "updated_at"])
    audit_record(action="eval.dataset.revise", obj=dataset, team=dataset.team,
                 changes={"revision": number, "source": source, "added": added, "removed": removed,
                          "items": count, "message": message[:200]}, actor=actor)
    return revision


@transaction.atomic
def dataset_items_add(*, dataset: Dataset, items: list[dict], actor=None, message: str = "",
                      source: str = ItemSource.MANUAL, source_ref: str = "") -> DatasetRevision:
    """Add items (dicts of the JSONL fields) as a new revision; ValidationError names each bad one."""
    if not items:
        raise ValidationError({"items": "Give at least one item."})
    dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
    existing = _current_keys(dataset)
    cleaned, problems = [], []
    for index, raw in enumerate(items, start=1):
        item, errors = clean_item(raw, input_names=dataset.input_names, line=index)
        if item and item["key"] and (item["key"] in existing or item["key"] in {c["key"] for c in cleaned}):
            errors = [RowError(index, "id", f"{item['key']!r} is already in the dataset")]
        if errors:
            problems += errors
        else:
            cleaned.append(item)
    if problems:
        raise ValidationError({(e.field or "item"): f"item {e.line}: {e.message}" if len(items) > 1 else e.message
                               for e in problems})
    number = dataset.latest_revision + 1
    position = _next_position(dataset)
    DatasetItem.objects.bulk_create([_item_row(dataset, number, position + i, item, source, source_ref)
                                     for i, item in enumerate(cleaned, start=1)])
    return _finish_revision(dataset, number, source=source, added=len(cleaned), removed=0, actor=actor,
                            message=message or f"added {len(cleaned)} item(s)")


@transaction.atomic
def dataset_item_edit(*, dataset: Dataset, key: str, changes: dict, actor=None, message: str = ""
                      ) -> DatasetRevision:
    dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
    current = DatasetItem.objects.at_revision(dataset.pk, dataset.latest_revision).filter(key=key).first()
    if current is None:
        raise ValidationError({"id": f"No item {key!r} in the latest revision."})
    raw = {"id": key, "inputs": current.inputs, "expected": current.expected, "contexts": current.contexts,
           "tags": current.tags, "metadata": current.metadata, **changes}
    item, errors = clean_item(raw, input_names=dataset.input_names, line=1)
    if errors:
        raise ValidationError({e.field or "item": e.message for e in errors})
    unchanged = all(item[f] == getattr(current, f) for f in ("inputs", "expected", "contexts", "tags", "metadata"))
    if unchanged:
        raise ValidationError({"item": "Nothing changed."})
    number = dataset.latest_revision + 1
    DatasetItem.objects.filter(pk=current.pk).update(removed_in=number)
    DatasetItem.objects.bulk_create([_item_row(dataset, number, current.position, item, current.source,
                                               current.source_ref)])
    return _finish_revision(dataset, number, source=ItemSource.MANUAL, added=1, removed=1, actor=actor,
                            message=message or f"edited {key}")


@transaction.atomic
def dataset_items_remove(*, dataset: Dataset, keys: list[str], actor=None, message: str = "") -> DatasetRevision:
    dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
    number = dataset.latest_revision + 1
    removed = (DatasetItem.objects.at_revision(dataset.pk, dataset.latest_revision).filter(key__in=keys)
               .update(removed_in=number))
    if not removed:
        raise ValidationError({"id": "None of these items is in the latest revision."})
    return _finish_revision(dataset, number, source=ItemSource.MANUAL, added=0, removed=removed, actor=actor,
                            message=message or f"removed {removed} item(s)")


def dataset_item_from_playground(*, dataset: Dataset, run, expected: str | None, tags=(), actor=None
                                 ) -> DatasetRevision:
    return dataset_items_add(
        dataset=dataset, actor=actor, source=ItemSource.PLAYGROUND, source_ref=f"playground-run:{run.pk}",
        message=f"from playground run {run.pk} ({run.version})",
        items=[{"inputs": run.inputs or {}, "expected": expected, "tags": list(tags),
                "metadata": {"model": run.model, "prompt_version_id": run.version_id}}],
    )


GATEWAY_OWN_METADATA = ("tenant",)  # request metadata the gateway reads itself: never an input


@transaction.atomic
def dataset_item_from_gateway(*, dataset: Dataset, body, expected: str | None, tags=(), actor=None
                              ) -> DatasetRevision:
    """A stored (redacted) gateway request as a dataset item of its team's dataset: a prompt-by-reference
    request gives its template variables as inputs, any other request its messages. The revision's audit
    event (eval.dataset.revise, source gateway) records the add."""
    if actor is not None:
        require(actor, Action.CHANGE, dataset)
    if dataset.team_id != body.team_id:
        raise ValidationError({"dataset": "Choose a dataset of the team whose key made this request."})
    request = body.request or {}
    if request.get("prompt"):
        inputs = {k: v for k, v in (request.get("metadata") or {}).items() if k not in GATEWAY_OWN_METADATA}
    else:
        inputs = {"messages": request.get("messages") or []}
    return dataset_items_add(
        dataset=dataset, actor=actor, source=ItemSource.GATEWAY, source_ref=f"gateway-request:{body.request_id}",
        message=f"from gateway request {body.request_id}",
        items=[{"inputs": inputs, "expected": expected, "tags": list(tags),
                "metadata": {"gateway_request_id": body.request_id, "model": body.model,
                             "prompt": request.get("prompt") or ""}}],
    )


# --- export ---------------------------------------------------------------------------------------------------

def _export_rows(dataset: Dataset, revision: int) -> Iterator[DatasetItem]:
    return (DatasetItem.objects.at_revision(dataset.pk, revision).order_by("position", "id")
            .only("key", "inputs", "expected", "contexts", "tags", "metadata").iterator(chunk_size=BATCH))


def export_jsonl(dataset: Dataset, revision: int) -> Iterator[str]:
    for item in _export_rows(dataset, revision):
        row = {"id": item.key, "inputs": item.inputs, "expected": item.expected, "contexts": item.contexts,
               "tags": item.tags}
        if item.metadata:
            row["metadata"] = item.metadata
        yield json.dumps(row, ensure_ascii=False) + "\n"


class _Echo:
    def write(self, value):
        return value


def export_csv(dataset: Dataset, revision: int) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(["id", "inputs", "expected", "contexts", "tags", "metadata"])
    for item in _export_rows(dataset, revision):
        yield writer.writerow([
            item.key, json.dumps(item.inputs, ensure_ascii=False),
            "" if item.expected is None else item.expected,
            json.dumps(item.contexts, ensure_ascii=False) if item.contexts else "",
            ",".join(item.tags), json.dumps(item.metadata, ensure_ascii=False) if item.metadata else "",
        ])
