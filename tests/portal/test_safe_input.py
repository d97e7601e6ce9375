"""Input PostgreSQL cannot store (NUL, lone surrogates), JSON too deep to walk, bodies too large and negative
offsets are refused at the API's edge with a 4xx naming the field — never a 500 (issue #12, found by fuzzing)."""

import json

import pytest
from django.test import Client

from portal.safe_input import InputRejected, find_bad_text, loads_json, text_problem

pytestmark = pytest.mark.django_db


@pytest.fixture
def call(engineer, team, token_for):
    """A client that answers 500s as responses (so a test sees the status) with a write token."""
    _, secret = token_for(engineer, team, scope="write")
    client = Client(raise_request_exception=False)

    def send(method, path, body=None, content_type="application/json"):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
        if method == "get":
            return client.get(path, **headers)
        return client.post(path, data=body, content_type=content_type, **headers)

    return send


def test_the_checks_name_nul_lone_surrogates_and_depth_with_their_path():
    assert text_problem("plain text, ünïcode ✓") is None
    assert "NUL" in text_problem("a\x00b")
    assert "surrogate" in text_problem("x\ud800")
    assert find_bad_text({"events": [{"ok": "fine"}, {"model": "gpt\x00"}]}) == (
        "events[1].model", text_problem("\x00"))
    assert find_bad_text({"k\x00": 1})[1].startswith("has a key that contains a NUL")
    deep = []
    for _ in range(10_000):
        deep = [deep]
    assert "nested deeper than" in find_bad_text(deep)[1]  # no RecursionError


def test_loads_json_refuses_what_it_cannot_read_with_400_and_bad_text_with_422():
    with pytest.raises(InputRejected) as too_deep:
        loads_json("[" * 200_000)
    with pytest.raises(InputRejected) as nul:
        loads_json('{"name": "a\\u0000"}')
    assert too_deep.value.status == 400 and "nested too deeply" in too_deep.value.message
    assert nul.value.status == 422 and nul.value.field == "name"
    assert loads_json('{"name": "a\\u0000"}', check_text=False) == {"name": "a\x00"}


@pytest.mark.parametrize("path,field", [
    ("/api/v1/usage/summary?feature=%00", "feature"),
    ("/api/v1/llm/models?kind=%00", "kind"),
    ("/api/v1/audit/events?actor=%00", "actor"),
    ("/api/v1/use-cases?q=%00", "q"),
    ("/api/v1/prompts/support%00x", "path"),
])
def test_a_nul_in_a_query_filter_or_the_path_is_a_422_naming_it(call, path, field):
    response = call("get", path)

    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["field"] == field and "NUL" in response.json()["errors"][0]["message"]


def test_a_nul_in_a_page_url_is_the_portals_400_page(client_for, engineer):
    response = client_for(engineer).get("/prompts/?q=%00")

    assert response.status_code == 400 and b"topbar" in response.content


@pytest.mark.parametrize("body,status,field", [
    ('{"name": "support/a\\u0000", "template": "Hi"}', 422, "name"),
    ('{"name": "support/a", "template": "x\\ud800"}', 422, "template"),
    ('{"name": "support/a", "config": {"k\\u0000": 1}}', 422, "config.k\\x00"),
    ("[" * 200_000, 400, None),
])
def test_a_json_body_with_unstorable_text_or_too_deep_is_refused_naming_the_field(call, body, status, field):
    response = call("post", "/api/v1/prompts", body)

    assert response.status_code == status, response.content
    if field:
        assert response.json()["errors"][0]["field"] == field
    else:
        assert "nested too deeply" in response.json()["detail"]


@pytest.mark.parametrize("path,content_type", [
    ("/api/v1/prompts", "application/json"),
    ("/api/v1/evals/datasets/{pk}/import?format=jsonl", "application/x-ndjson"),
    ("/api/v1/usage", "application/json"),
])
def test_a_body_over_the_upload_limit_is_a_413(call, settings, team, engineer, path, content_type):
    from apps.evals.datasets import dataset_create

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024  # the same path as 50 MB against the 10 MB default
    path = path.format(pk=dataset_create(team=team, name="support/big", actor=engineer).pk)

    response = call("post", path, json.dumps({"x": "a" * (2 * 1024 * 1024)}), content_type)

    assert response.status_code == 413 and "too large" in response.json()["detail"]


@pytest.mark.parametrize("path", [
    "/api/v1/use-cases?offset=-1000", "/api/v1/prompts?offset=-5", "/api/v1/evals/datasets?offset=-3",
    "/api/v1/prompts?offset=99999999999999999999999",
])
def test_a_negative_or_huge_offset_is_a_422(call, path):
    response = call("get", path)

    assert response.status_code == 422, response.content


def test_json_typed_into_a_form_field_is_checked_like_an_api_body():
    from django.core.exceptions import ValidationError

    from portal.safe_input import form_json

    assert form_json('{"k": 8}') == {"k": 8}
    for raw, message in (('{"k": "a\\u0000"}', "k contains a NUL"), ("[" * 100_000, "nested"),
                         ('{"x": "\\ud800"}', "lone surrogate"), ("{not json", "Not valid JSON")):
        with pytest.raises(ValidationError, match=message):
            form_json(raw)


def test_a_page_form_with_nul_in_its_json_says_so_next_to_the_field(client_for, owner, team):
    from apps.llm.services import catalog_seed_local
    from apps.rag.services import collection_create

    catalog_seed_local()
    collection = collection_create(team=team, name="Forms", embedding_model="local-minilm", user=owner)
    data = {"description": "New", "data_class": "internal", "answer_prompt": "", "chunking_strategy": "recursive",
            "chunking_chunk_tokens": 200, "chunking_overlap_tokens": 30, "retrieval_json": '{"mode": "a\\u0000"}'}

    response = client_for(owner).post(f"/rag/{collection.pk}/settings/", data)

    assert response.status_code == 400 and "mode contains a NUL character" in response.content.decode()


def test_the_400_page_for_a_nul_in_the_url_carries_the_security_headers(client_for, engineer):
    response = client_for(engineer).get("/prompts/?q=%00")

    assert response.status_code == 400
    assert response["X-Frame-Options"] == "DENY" and "Content-Security-Policy" in response
