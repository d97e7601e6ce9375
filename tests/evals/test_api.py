"""The REST API: datasets (create, items, validated import, export), runs, and online feedback."""

from __future__ import annotations

import json

import pytest

from apps.costs.models import Outcome
from apps.evals.models import Dataset, EvalRun, Feedback
from tests.factories import UsageEventFactory


def api(client, method, path, secret=None, body=None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret else {}
    call = getattr(client, method)
    if body is not None and not isinstance(body, bytes | str):
        return call(path, json.dumps(body), content_type="application/json", **headers, **extra)
    if body is not None:
        return call(path, body, **headers, **extra)
    return call(path, **headers, **extra)


@pytest.fixture
def write(engineer, team, token_for):
    return token_for(engineer, team, "write")[1]


@pytest.fixture
def ingest(engineer, team, token_for):
    return token_for(engineer, team, "ingest")[1]


def test_datasets_are_created_filled_and_exported_with_a_write_token(client, write, team):
    created = api(client, "post", "/api/v1/evals/datasets", write,
                  {"team": team.slug, "name": "support/api-set", "input_names": ["question"]})
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    bad = api(client, "post", f"/api/v1/evals/datasets/{pk}/items", write, {"items": [{"inputs": {"x": 1}}]})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "inputs"
    added = api(client, "post", f"/api/v1/evals/datasets/{pk}/items", write,
                {"items": [{"id": "a", "inputs": {"question": "Why?"}, "expected": "Because."}]})
    assert added.status_code == 201 and added.json()["revision"] == 1
    exported = api(client, "get", f"/api/v1/evals/datasets/{pk}/export?format=jsonl", write)
    assert json.loads(b"".join(exported.streaming_content))["id"] == "a"


def test_the_import_api_validates_first_and_reports_lines(client, write, dataset):
    body = '{"inputs": {"question": "fine"}}\n{"inputs": {"question": 1}, "tags": "BAD TAG"}\n'
    response = client.post(f"/api/v1/evals/datasets/{dataset.pk}/import?format=jsonl", body,
                           content_type="application/x-ndjson", HTTP_AUTHORIZATION=f"Bearer {write}")
    assert response.status_code == 422
    body = response.json()  # the API's one error body: the row errors, and the import's counts as `report`
    assert body["report"]["written"] is False and body["report"]["error_rows"] == 1
    assert body["errors"][0]["line"] == 2 and body["errors"][0]["field"] == "tags"
    csv_body = "question,expected\nWhat?,That.\n"
    response = client.post(f"/api/v1/evals/datasets/{dataset.pk}/import", csv_body, content_type="text/csv",
                           HTTP_AUTHORIZATION=f"Bearer {write}")
    assert response.status_code == 200 and response.json()["revision"] == 2


def test_a_read_token_cannot_write_and_other_teams_see_nothing(client, engineer, team, token_for, outsider,
                                                                other_team, dataset):
    _, read = token_for(engineer, team, "read")
    _, theirs = token_for(outsider, other_team, "write")
    assert api(client, "get", f"/api/v1/evals/datasets/{dataset.pk}", read).status_code == 200
    assert api(client, "post", f"/api/v1/evals/datasets/{dataset.pk}/items", read,
               {"items": [{"inputs": {"question": "x"}}]}).status_code == 403
    assert api(client, "get", f"/api/v1/evals/datasets/{dataset.pk}", theirs).status_code == 404
    assert api(client, "get", "/api/v1/evals/datasets", theirs).json() == []
    assert api(client, "get", "/api/v1/evals/datasets").status_code == 401


def test_runs_are_started_and_read_through_the_api(client, write, prompt, dataset, make_evaluator):
    evaluator = make_evaluator("cites", "citation")
    body = {"prompt": prompt.name, "version": 1, "dataset": dataset.pk, "evaluators": [evaluator.pk],
            "repetitions": 3, "model_config": {"temperature": 5}}
    bad = api(client, "post", "/api/v1/evals/runs", write, body)
    assert bad.status_code == 422 and "temperature" in bad.content.decode()
    body["model_config"] = {"temperature": 0}
    created = api(client, "post", "/api/v1/evals/runs", write, body)
    assert created.status_code == 201, created.content
    run = created.json()
    assert run["status"] == "queued" and run["progress_total"] == 9 and run["model"] == "local-extractive"
    assert api(client, "get", f"/api/v1/evals/runs/{run['id']}", write).json()["id"] == run["id"]
    cancelled = api(client, "post", f"/api/v1/evals/runs/{run['id']}/cancel", write)
    assert cancelled.json()["status"] == "cancelled"
    assert EvalRun.objects.get(pk=run["id"]).cancel_requested


# --- feedback ----------------------------------------------------------------------------------------------

def test_feedback_sets_the_calls_outcome_and_feeds_the_rates(client, ingest, team):
    event = UsageEventFactory(request_id="req-123", team=team, prompt_name="support/faq-answer", prompt_version=2)
    response = api(client, "post", "/api/v1/feedback", ingest, {"request_id": "req-123", "thumbs": "down",
                                                               "comment": "wrong", "correction": "Five days."})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["success"] is False and body["overridden"] is True
    assert (body["prompt_name"], body["prompt_version"]) == ("support/faq-answer", 2)
    event.refresh_from_db()
    assert event.outcome == Outcome.FAILURE
    UsageEventFactory(request_id="req-124", team=team, prompt_name="support/faq-answer", prompt_version=2)
    api(client, "post", "/api/v1/feedback", ingest, {"request_id": "req-124", "score": 0.9})
    from apps.evals.selectors import feedback_rates

    rates = feedback_rates(actor=team.memberships.first().user)
    assert rates[0]["n"] == 2 and rates[0]["success_rate"] == 0.5 and rates[0]["override_rate"] == 0.5


def test_feedback_with_the_trace_adds_an_item_to_a_dataset(client, ingest, team, dataset):
    UsageEventFactory(request_id="req-9", team=team)
    response = api(client, "post", "/api/v1/feedback", ingest, {
        "request_id": "req-9", "thumbs": "down", "correction": "Refunds take 5 days.",
        "inputs": {"question": "How long are refunds?"}, "output": "Instantly.", "dataset": dataset.pk})
    assert response.status_code == 201
    dataset.refresh_from_db()
    item = dataset.items_at().get(source="feedback")
    assert item.expected == "Refunds take 5 days." and item.source_ref == "req-9"
    assert Feedback.objects.get().dataset_item == item


def test_feedback_is_checked_and_never_touches_another_teams_call(client, ingest, write, other_team):
    foreign = UsageEventFactory(request_id="theirs", team=other_team)
    response = api(client, "post", "/api/v1/feedback", ingest, {"request_id": "theirs", "thumbs": "up"})
    assert response.status_code == 201
    foreign.refresh_from_db()
    assert foreign.outcome == Outcome.UNKNOWN and response.json()["prompt_name"] == ""
    assert api(client, "post", "/api/v1/feedback", ingest, {"request_id": "x"}).status_code == 422
    assert api(client, "post", "/api/v1/feedback", ingest, {"thumbs": "up"}).status_code == 422
    assert api(client, "post", "/api/v1/feedback", ingest, {"request_id": "x", "score": 3}).status_code == 422
    assert api(client, "post", "/api/v1/feedback", write, {"request_id": "x", "thumbs": "up"}).status_code == 403
    assert not Dataset.objects.filter(team=other_team).exists()


def test_feedback_may_carry_the_products_own_groundedness_even_alone(client, ingest, team):
    event = UsageEventFactory(request_id="req-g1", team=team)
    response = api(client, "post", "/api/v1/feedback", ingest, {"request_id": "req-g1", "groundedness": 0.75,
                                                               "use_case_id": 7})
    assert response.status_code == 201, response.content
    assert (response.json()["groundedness"], response.json()["success"]) == (0.75, None)  # not an outcome
    event.refresh_from_db()
    assert event.outcome == Outcome.UNKNOWN
    assert api(client, "post", "/api/v1/feedback", ingest, {"request_id": "req-g2", "thumbs": "up",
                                                            "groundedness": 1}).status_code == 201
    assert sorted(Feedback.objects.values_list("groundedness", "success")) == [(0.75, None), (1.0, True)]
    from apps.evals.selectors import feedback_rates

    rates = feedback_rates(actor=team.memberships.first().user)
    assert sum(r["n"] for r in rates) == 1  # the score alone is no outcome: not in the success rate


@pytest.mark.parametrize("value", [1.5, -0.1, "high", [0.5]])
def test_a_groundedness_outside_0_to_1_is_a_422_naming_it_and_nothing_is_stored(client, ingest, value):
    response = api(client, "post", "/api/v1/feedback", ingest, {"request_id": "r-1", "thumbs": "up",
                                                               "groundedness": value})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["groundedness"]
    assert not Feedback.objects.exists()


def test_only_who_may_ingest_sends_a_groundedness(client, write, token_for, viewer, team):
    read = token_for(viewer, team, "read")[1]
    for secret in (write, read):
        response = api(client, "post", "/api/v1/feedback", secret, {"request_id": "r-1", "groundedness": 0.5})
        assert response.status_code == 403
    assert not Feedback.objects.exists()


@pytest.mark.parametrize(("field", "value"), [("prompt_version", -1), ("prompt_version", 0),
                                              ("prompt_version", 2**31), ("use_case_id", 2**63)])
def test_feedback_with_a_version_or_use_case_the_database_cannot_hold_is_a_422_naming_it(client, ingest, field,
                                                                                          value):
    response = api(client, "post", "/api/v1/feedback", ingest, {"request_id": "r-1", "thumbs": "up", field: value})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert not Feedback.objects.exists()
