"""Datasets: immutable revisions, validated streamed imports (CSV and JSONL), exports."""

import io
import json
import tracemalloc

import pytest
from django.core.exceptions import ValidationError

from apps.audit.models import AuditEvent
from apps.evals.datasets import (
    dataset_create,
    dataset_import,
    dataset_item_edit,
    dataset_items_add,
    dataset_items_remove,
    export_csv,
    export_jsonl,
)
from apps.evals.models import DatasetItem, DatasetRevision


def jsonl(*rows) -> io.BytesIO:
    return io.BytesIO("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode() + b"\n")


def keys_at(dataset, revision):
    return list(dataset.items_at(revision).order_by("position").values_list("key", flat=True))


def test_each_change_makes_a_new_revision_and_old_revisions_never_change(dataset, engineer):
    assert dataset.latest_revision == 1
    dataset_items_add(dataset=dataset, items=[{"id": "new", "inputs": {"question": "Q?"}}], actor=engineer)
    dataset_item_edit(dataset=dataset, key="refund", changes={"expected": "Five days."}, actor=engineer)
    dataset_items_remove(dataset=dataset, keys=["hours"], actor=engineer)
    dataset.refresh_from_db()
    assert dataset.latest_revision == 4
    assert keys_at(dataset, 1) == ["refund", "hours", "password"]
    assert keys_at(dataset, 2) == ["refund", "hours", "password", "new"]
    assert keys_at(dataset, 4) == ["refund", "password", "new"]
    assert dataset.items_at(1).get(key="refund").expected == "Refunds take 5 days."
    assert dataset.items_at(3).get(key="refund").expected == "Five days."
    assert [r.item_count for r in DatasetRevision.objects.filter(dataset=dataset).order_by("number")] == [3, 4, 4, 3]
    assert AuditEvent.objects.filter(action="eval.dataset.revise").count() == 4
    with pytest.raises(ValidationError):
        DatasetRevision.objects.get(dataset=dataset, number=1).save()


def test_an_item_missing_a_required_input_is_refused_with_the_field(dataset, engineer):
    with pytest.raises(ValidationError) as exc:
        dataset_items_add(dataset=dataset, items=[{"inputs": {"other": 1}}], actor=engineer)
    assert "question" in str(exc.value.message_dict["inputs"])
    assert dataset.latest_revision == 1


BAD_JSONL = [
    {"id": "ok-1", "inputs": {"question": "Fine?"}, "expected": "Yes", "tags": ["billing"]},
    "{not json",
    {"id": "ok-2", "inputs": {"question": "Also fine?"}},
    {"inputs": "a string"},
    {"inputs": {"question": "x"}, "tags": ["Not A Tag!"]},
    {"inputs": {"question": "x"}, "contexts": [1, 2]},
    {"inputs": {"question": "x"}, "colour": "blue"},
    {"inputs": {"nothing": "x"}},
    {"id": "ok-1", "inputs": {"question": "dup"}},
]


def test_import_reports_every_bad_row_with_its_line_and_writes_nothing(dataset, engineer):
    report = dataset_import(dataset=dataset, file=jsonl(*BAD_JSONL), fmt="jsonl", actor=engineer)
    assert not report.written and report.rows == 9 and report.valid_rows == 2 and report.error_rows == 7
    by_line = {e.line: (e.field, e.message) for e in report.errors}
    assert by_line[2][1].startswith("not valid JSON")
    assert by_line[4][0] == "inputs"
    assert by_line[5][0] == "tags"
    assert by_line[6][0] == "contexts"
    assert by_line[7] == ("colour", by_line[7][1]) and "unknown field" in by_line[7][1]
    assert by_line[8][0] == "inputs" and "question" in by_line[8][1]
    assert by_line[9][0] == "id" and "twice" in by_line[9][1]
    dataset.refresh_from_db()
    assert dataset.latest_revision == 1 and DatasetItem.objects.filter(dataset=dataset).count() == 3


def test_import_the_valid_rows_when_asked(dataset, engineer):
    report = dataset_import(dataset=dataset, file=jsonl(*BAD_JSONL), fmt="jsonl", import_valid=True, actor=engineer)
    assert report.written and report.revision == 2
    assert keys_at(dataset, 2) == ["refund", "hours", "password", "ok-1", "ok-2"]
    item = DatasetItem.objects.get(dataset=dataset, key="ok-1")
    assert item.source == "import" and item.source_ref == "line 1" and item.tags == ["billing"]


def test_csv_import_maps_columns_and_reports_bad_rows(team, engineer):
    ds = dataset_create(team=team, name="support/csv", input_names=["question"], actor=engineer)
    text = ("id,question,customer,expected,contexts,tags\n"
            "a,How long?,ACME,Five days,\"[\"\"Refunds take 5 days.\"\"]\",\"billing, refunds\"\n"
            "b,Open when?,ACME,,Support is open 9-5.,\n"
            "c,Bad contexts,ACME,,\"[not json\",\n"
            "d,only three,columns\n")
    report = dataset_import(dataset=ds, file=io.BytesIO(text.encode()), fmt="csv", actor=engineer)
    assert not report.written
    assert [(e.line, e.field) for e in report.errors] == [(4, "contexts"), (5, "")]
    report = dataset_import(dataset=ds, file=io.BytesIO(text.encode()), fmt="csv", import_valid=True, actor=engineer)
    assert report.written
    a = DatasetItem.objects.get(dataset=ds, key="a")
    assert a.inputs == {"question": "How long?", "customer": "ACME"}
    assert a.contexts == ["Refunds take 5 days."] and a.tags == ["billing", "refunds"] and a.expected == "Five days"
    b = DatasetItem.objects.get(dataset=ds, key="b")
    assert b.expected is None and b.contexts == ["Support is open 9-5."]


def test_replace_import_removes_the_old_items_in_the_new_revision_only(dataset, engineer):
    report = dataset_import(dataset=dataset, file=jsonl({"id": "only", "inputs": {"question": "Q"}}), fmt="jsonl",
                            mode="replace", actor=engineer)
    assert report.written
    assert keys_at(dataset, 2) == ["only"]
    assert keys_at(dataset, 1) == ["refund", "hours", "password"]


def test_append_refuses_an_id_already_in_the_dataset(dataset, engineer):
    report = dataset_import(dataset=dataset, file=jsonl({"id": "refund", "inputs": {"question": "Q"}}),
                            fmt="jsonl", actor=engineer)
    assert not report.written and "already in the dataset" in report.errors[0].message


def test_a_file_that_is_not_utf8_is_refused_with_a_reason(dataset, engineer):
    report = dataset_import(dataset=dataset, file=io.BytesIO(b'{"inputs": {"question": "\xff\xfe"}}\n'),
                            fmt="jsonl", actor=engineer)
    assert not report.written and "UTF-8" in report.fatal


def test_export_round_trips_through_import(dataset, engineer, team):
    for fmt, export in (("jsonl", export_jsonl), ("csv", export_csv)):
        data = "".join(export(dataset, dataset.latest_revision)).encode()
        copy = dataset_create(team=team, name=f"support/copy-{fmt}", actor=engineer)
        report = dataset_import(dataset=copy, file=io.BytesIO(data), fmt=fmt, actor=engineer)
        assert report.written, report.errors
        original = {i.key: (i.inputs, i.expected, i.contexts, i.tags) for i in dataset.items_at()}
        copied = {i.key: (i.inputs, i.expected, i.contexts, i.tags) for i in copy.items_at(1)}
        assert copied == original


def _big_file(rows: int) -> bytes:
    lines = [json.dumps({"inputs": {"question": f"Question number {i} " + "x" * 100}, "expected": "y" * 50})
             for i in range(rows)]
    lines.append(json.dumps({"inputs": {}}))
    return ("\n".join(lines) + "\n").encode()


def test_a_100000_row_file_with_one_bad_last_row_writes_nothing(team, engineer):
    ds = dataset_create(team=team, name="support/big", input_names=["question"], actor=engineer)
    report = dataset_import(dataset=ds, file=io.BytesIO(_big_file(100_000)), fmt="jsonl", actor=engineer)
    assert report.rows == 100_001 and report.error_rows == 1 and report.errors[0].line == 100_001
    assert not report.written and DatasetItem.objects.filter(dataset=ds).count() == 0


def test_imports_are_validated_as_a_stream_not_loaded_into_memory(team, engineer):
    """Peak memory while validating stays far below the file's size (the file is read line by line)."""
    ds = dataset_create(team=team, name="support/streamed", input_names=["question"], actor=engineer)
    data = _big_file(20_000)
    tracemalloc.start()
    try:
        report = dataset_import(dataset=ds, file=io.BytesIO(data), fmt="jsonl", actor=engineer)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.rows == 20_001 and not report.written
    assert peak < len(data) / 4, f"peak {peak} bytes for a {len(data)}-byte file"


def test_dataset_names_are_checked(team, engineer):
    with pytest.raises(ValidationError) as exc:
        dataset_create(team=team, name="Bad Name!", actor=engineer)
    assert "name" in exc.value.message_dict
    dataset_create(team=team, name="support/ok", actor=engineer)
    with pytest.raises(ValidationError):
        dataset_create(team=team, name="support/ok", actor=engineer)


def test_the_database_refuses_to_rewrite_items_revisions_and_evaluators(dataset, make_evaluator):
    from django.db import DatabaseError, transaction

    from apps.evals.models import EvaluatorDefinition

    item = dataset.items_at().first()
    for statement in (
        lambda: DatasetItem.objects.filter(pk=item.pk).update(expected="rewritten"),
        lambda: DatasetItem.objects.filter(pk=item.pk).update(removed_in=5, expected="sneaky"),
        lambda: DatasetRevision.objects.filter(dataset=dataset).update(message="rewritten"),
        lambda: EvaluatorDefinition.objects.filter(pk=make_evaluator("x", "json_valid").pk).update(threshold=0.1),
    ):
        with pytest.raises(DatabaseError), transaction.atomic():
            statement()
    assert DatasetItem.objects.filter(pk=item.pk).update(removed_in=2) == 1  # the one allowed change
