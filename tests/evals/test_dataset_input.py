"""Dataset imports (CSV and JSONL) and item edits name rows holding text PostgreSQL cannot store (NUL, lone
surrogates) or JSON nested too deeply, instead of failing the whole import with a 500."""

import io

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from apps.evals.datasets import dataset_import, dataset_items_add
from apps.evals.models import DatasetItem

pytestmark = pytest.mark.django_db


def test_jsonl_rows_with_nul_surrogates_or_deep_nesting_are_named_by_line(dataset, engineer):
    text = ('{"id": "ok", "inputs": {"question": "fine"}}\n'
            '{"inputs": {"question": "a\\u0000b"}}\n'
            '{"inputs": {"question": "x"}, "expected": "y\\ud800"}\n'
            '{"inputs": {"question": "x"}, "metadata": {"k\\u0000": 1}}\n'
            + '{"inputs": {"question": "x"}, "metadata": ' + "[" * 100_000 + "\n")

    report = dataset_import(dataset=dataset, file=io.BytesIO(text.encode()), fmt="jsonl", actor=engineer)

    by_line = {e.line: (e.field, e.message) for e in report.errors}
    assert not report.written and report.valid_rows == 1 and sorted(by_line) == [2, 3, 4, 5]
    assert by_line[2][0] == "inputs" and "inputs.question contains a NUL" in by_line[2][1]
    assert by_line[3][0] == "expected" and "lone surrogate" in by_line[3][1]
    assert by_line[4][0] == "metadata" and "key that contains a NUL" in by_line[4][1]
    assert "nested too deeply" in by_line[5][1]
    report = dataset_import(dataset=dataset, file=io.BytesIO(text.encode()), fmt="jsonl", import_valid=True,
                            actor=engineer)
    assert report.written and DatasetItem.objects.filter(dataset=dataset, key="ok").exists()


def test_a_csv_cell_with_a_nul_is_named_by_line_and_column(dataset, engineer):
    text = "question,expected\nFine?,Yes\nBad\x00,No\n"

    report = dataset_import(dataset=dataset, file=io.BytesIO(text.encode()), fmt="csv", actor=engineer)

    assert not report.written and [(e.line, e.field) for e in report.errors] == [(3, "inputs")]
    assert "NUL" in report.errors[0].message


def test_items_added_through_the_service_or_api_are_checked_too(dataset, engineer, team, token_for):
    with pytest.raises(ValidationError) as exc:
        dataset_items_add(dataset=dataset, items=[{"inputs": {"question": "x"}, "tags": ["a\x00"]}], actor=engineer)
    assert "NUL" in str(exc.value.message_dict["tags"])
    _, secret = token_for(engineer, team, "write")
    response = Client(raise_request_exception=False).post(
        f"/api/v1/evals/datasets/{dataset.pk}/import?format=jsonl", '{"inputs": {"question": "\\u0000"}}\n',
        content_type="application/x-ndjson", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 422 and "NUL" in response.json()["errors"][0]["message"]
