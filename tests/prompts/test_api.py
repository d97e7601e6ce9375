"""The REST API: resolve (ETag, cache, kill switch), render (422 naming each problem), writes by token."""

import json
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.prompts.models import Label, PromotionRequest
from apps.prompts.registry import register_resolve_guard
from apps.prompts.services import label_set, promotion_request_approve, promotion_request_open, version_create
from tests.prompts.conftest import text_draft

BASE = "/api/v1/prompts"


@pytest.fixture
def released(make_prompt, engineer, engineer2):
    prompt = make_prompt()
    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer)
    promotion_request_approve(request=request, user=engineer2)
    return prompt


def _bearer(secret):
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


@pytest.fixture
def read_client(engineer, team, token_for):
    return _bearer(token_for(engineer, team, "read")[1])


@pytest.fixture
def write_client(engineer, team, token_for):
    return _bearer(token_for(engineer, team, "write")[1])


def test_resolve_returns_the_production_version_ready_to_render(released, read_client):
    response = read_client.get(f"{BASE}/support/triage-summary/resolve")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["version"] == 1 and body["label"] == "production" and body["type"] == "text"
    assert body["template"] == "Summarise for {{ customer }}:\n<ticket>{{ ticket }}</ticket>"
    assert body["variables"] == ["customer", "ticket"]
    assert body["content_hash"] == released.versions.get().content_hash
    assert response["ETag"].startswith('"') and "Server-Timing" in response


def test_resolve_by_version_and_by_another_label(released, read_client, add_version, engineer):
    v2 = add_version(released, "Two {{ ticket }}")
    label_set(prompt=released, label="staging", version=v2, actor=engineer)
    assert read_client.get(f"{BASE}/support/triage-summary/resolve?version=2").json()["version"] == 2
    assert read_client.get(f"{BASE}/support/triage-summary/resolve?label=staging").json()["version"] == 2
    assert read_client.get(f"{BASE}/support/triage-summary/resolve?label=latest").json()["version"] == 2
    missing = read_client.get(f"{BASE}/support/triage-summary/resolve?label=canary")
    assert missing.status_code == 404 and "no label 'canary'" in missing.json()["detail"]


def test_if_none_match_gives_304(released, read_client):
    etag = read_client.get(f"{BASE}/support/triage-summary/resolve")["ETag"]
    again = read_client.get(f"{BASE}/support/triage-summary/resolve", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again["ETag"] == etag and again.content == b""
    other = read_client.get(f"{BASE}/support/triage-summary/resolve", HTTP_IF_NONE_MATCH='"stale"')
    assert other.status_code == 200


def test_a_promotion_is_visible_to_the_very_next_resolve(released, read_client, add_version, engineer, engineer2,
                                                         django_capture_on_commit_callbacks):
    first = read_client.get(f"{BASE}/support/triage-summary/resolve")
    assert first.json()["version"] == 1
    read_client.get(f"{BASE}/support/triage-summary/resolve")  # warm
    v2 = add_version(released, "Two <ticket>{{ ticket }}</ticket>")
    with django_capture_on_commit_callbacks(execute=True):
        request = promotion_request_open(prompt=released, version=v2, actor=engineer)
        promotion_request_approve(request=request, user=engineer2)
    after = read_client.get(f"{BASE}/support/triage-summary/resolve", HTTP_IF_NONE_MATCH=first["ETag"])
    assert after.status_code == 200 and after.json()["version"] == 2


def test_a_label_move_of_an_included_prompt_refreshes_its_users(team, engineer, make_prompt, read_client,
                                                               django_capture_on_commit_callbacks):
    from apps.prompts.services import prompt_create

    with django_capture_on_commit_callbacks(execute=True):
        tone = prompt_create(team=team, name="shared/tone", actor=engineer, draft=text_draft("Be calm."))
        label_set(prompt=tone, label="staging", version=tone.versions.get(), actor=engineer)
        make_prompt(template='{% include_prompt "shared/tone" label="staging" %} <ticket>{{ ticket }}</ticket>')
    first = read_client.get(f"{BASE}/support/triage-summary/resolve?label=latest").json()
    assert first["template"] == "Be calm. <ticket>{{ ticket }}</ticket>"
    assert first["references"][0]["name"] == "shared/tone" and first["references"][0]["version"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        v2 = version_create(prompt=tone, draft=text_draft("Be brisk."), actor=engineer).version
        label_set(prompt=tone, label="staging", version=v2, actor=engineer)
    after = read_client.get(f"{BASE}/support/triage-summary/resolve?label=latest").json()
    assert after["template"] == "Be brisk. <ticket>{{ ticket }}</ticket>"


def test_a_warm_resolve_adds_no_query_beyond_authentication(released, read_client):
    read_client.get(f"{BASE}/support/triage-summary/resolve")
    with CaptureQueriesContext(connection) as warm:
        assert read_client.get(f"{BASE}/support/triage-summary/resolve").status_code == 200
    tables = " ".join(q["sql"] for q in warm.captured_queries)
    assert "prompts_" not in tables, tables  # the prompt itself came from the cache
    assert len(warm.captured_queries) <= 4  # token lookup, membership, role (accounts' own)


def test_a_resolve_guard_refuses_with_423_and_its_reason(restore_registry, released, read_client):
    register_resolve_guard("use_case", lambda target: "Use case UC-7 is suspended by the council."
                           if target.prompt_name == "support/triage-summary" else None)
    response = read_client.get(f"{BASE}/support/triage-summary/resolve")
    assert response.status_code == 423
    assert response.json() == {"detail": "Use case UC-7 is suspended by the council.", "errors": [], "guard": "use_case"}


def test_a_broken_resolve_guard_fails_closed(restore_registry, released, read_client):
    register_resolve_guard("use_case", lambda target: 1 / 0)
    assert read_client.get(f"{BASE}/support/triage-summary/resolve").status_code == 503


def test_resolve_of_an_unseen_prompt_is_404_whatever_the_label(released, outsider, other_team, token_for):
    client = _bearer(token_for(outsider, other_team, "read")[1])
    for query in ("", "?label=nope", "?version=9"):
        response = client.get(f"{BASE}/support/triage-summary/resolve{query}")
        assert response.status_code == 404
        assert "no prompt named" in response.json()["detail"] or "No prompt" in response.json()["detail"]


def test_resolve_needs_authentication(released):
    assert Client().get(f"{BASE}/support/triage-summary/resolve").status_code == 401


def test_render_returns_the_text(released, read_client):
    response = read_client.post(f"{BASE}/support/triage-summary/render",
                                {"variables": {"customer": "ACME", "ticket": "Fire"}}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["text"] == "Summarise for ACME:\n<ticket>Fire</ticket>"


def test_render_names_each_problem_in_a_422(released, read_client):
    response = read_client.post(f"{BASE}/support/triage-summary/render",
                                {"variables": {"ticket": "x", "colour": "red"}}, content_type="application/json")
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [(e["kind"], e["variable"]) for e in errors] == [("missing_variable", "customer"),
                                                           ("extra_variable", "colour")]


def test_render_of_a_sandbox_violation_is_a_422_not_a_500(released, read_client, add_version):
    add_version(released, "{{ ticket|attr('__class__') }}")
    response = read_client.post(f"{BASE}/support/triage-summary/render",
                                {"variables": {"ticket": "x"}, "version": 2}, content_type="application/json")
    assert response.status_code == 422
    assert response.json()["errors"][0]["kind"] == "sandbox" and response.json()["errors"][0]["line"] == 1


def test_a_write_token_creates_prompts_and_versions(write_client):
    response = write_client.post(BASE, {"name": "support/new", "team": "support-ai", "type": "text",
                                        "tags": ["new"], "version": {"template": "Hi {{ name }}",
                                                                     "commit_message": "first"}},
                                 content_type="application/json")
    assert response.status_code == 201, response.content
    created = write_client.post(f"{BASE}/support/new/versions", {"template": "Hello {{ name }}"},
                                content_type="application/json")
    assert created.status_code == 201 and created.json()["version"]["number"] == 2
    same = write_client.post(f"{BASE}/support/new/versions", {"template": "Hello {{ name }}"},
                             content_type="application/json")
    assert same.status_code == 200 and same.json()["created"] is False
    assert "identical to version 2" in same.json()["message"]
    listed = write_client.get(f"{BASE}/support/new/versions").json()
    assert [v["number"] for v in listed] == [2, 1] and listed[0]["labels"] == ["latest"]


def test_a_bad_version_is_a_422_naming_the_line(released, write_client):
    response = write_client.post(f"{BASE}/support/triage-summary/versions", {"template": "ok\n{% if %}"},
                                 content_type="application/json")
    assert response.status_code == 422
    assert "line 2" in response.json()["errors"][0]["message"]


def test_a_read_token_cannot_write(released, read_client):
    response = read_client.post(f"{BASE}/support/triage-summary/versions", {"template": "x"},
                                content_type="application/json")
    assert response.status_code == 403


def test_no_token_can_move_production(released, write_client, admin_user, team, token_for):
    response = write_client.put(f"{BASE}/support/triage-summary/labels/production", {"version": 1},
                                content_type="application/json")
    assert response.status_code == 403 and "promotion request" in response.json()["detail"]
    staging = write_client.put(f"{BASE}/support/triage-summary/labels/staging", {"version": 1, "reason": "qa"},
                               content_type="application/json")
    assert staging.status_code == 200
    assert Label.objects.get(prompt=released, name="staging").updated_by_label.startswith("token gp_")


def test_a_token_opens_a_request_but_cannot_approve_it(released, write_client, add_version, engineer2, token_for,
                                                        team):
    add_version(released, "Two <ticket>{{ ticket }}</ticket> {{ customer }}")
    opened = write_client.post(f"{BASE}/support/triage-summary/promotions", {"version": 2, "reason": "better"},
                               content_type="application/json")
    assert opened.status_code == 201, opened.content
    body = opened.json()
    assert body["status"] == "open" and body["from_version"] == 1 and body["to_version"] == 2
    assert {c["key"] for c in body["checks"]} == {"lint", "approvals", "use_case", "eval_gate"}
    approver_token = _bearer(token_for(engineer2, team, "write")[1])
    refused = approver_token.post(f"{BASE}/-/promotion-requests/{body['id']}/approve")
    assert refused.status_code == 403
    assert PromotionRequest.objects.get(pk=body["id"]).status == "open"


def test_a_session_user_approves_through_the_api_with_csrf(released, add_version, engineer, engineer2):
    add_version(released, "Two <ticket>{{ ticket }}</ticket> {{ customer }}")
    request = promotion_request_open(prompt=released, version=released.versions.get(number=2), actor=engineer)
    client = Client(enforce_csrf_checks=True)
    client.force_login(engineer2)
    assert client.post(f"{BASE}/-/promotion-requests/{request.pk}/approve").status_code == 403  # no CSRF token
    client = Client()
    client.force_login(engineer2)
    response = client.post(f"{BASE}/-/promotion-requests/{request.pk}/approve")
    assert response.status_code == 200 and response.json()["status"] == "applied"


def test_labels_history_and_time_travel(released, read_client):
    labels = read_client.get(f"{BASE}/support/triage-summary/labels").json()
    assert {(lb["name"], lb["version"], lb["protected"]) for lb in labels} == {("latest", 1, False),
                                                                               ("production", 1, True)}
    history = read_client.get(f"{BASE}/support/triage-summary/labels/production/history").json()
    assert history[0]["to_version"] == 1 and history[0]["actor"] == "ellen-engineer"
    at = (datetime.fromisoformat(history[0]["occurred_at"]) + timedelta(milliseconds=1)).isoformat()  # JSON: ms
    assert read_client.get(f"{BASE}/support/triage-summary/labels/production/at", {"t": at}).json()["version"] == 1
    before = read_client.get(f"{BASE}/support/triage-summary/labels/production/at",
                             {"t": "2000-01-01T00:00:00Z"}).json()
    assert before["version"] is None


def test_diff_over_the_api(released, read_client, add_version):
    add_version(released, "Summarise for {{ customer }}:\n<ticket>{{ ticket }}</ticket>\nBe brief.",
                config={"temperature": 0.1})
    diff = read_client.get(f"{BASE}/support/triage-summary/diff", {"a": 1, "b": 2}).json()
    assert diff["changed_lines"] == 1
    assert diff["template"][-1] == {"tag": "insert", "left_line": None, "left": None, "right_line": 3,
                                    "right": "Be brief."}
    assert {"key": "config.temperature", "left": None, "right": 0.1, "changed": True} in diff["config"]


def test_the_openapi_schema_lists_the_prompt_endpoints(client):
    schema = json.loads(client.get("/api/v1/openapi.json").content)
    paths = set(schema["paths"])
    assert "/api/v1/prompts/{name}/resolve" in paths
    assert "/api/v1/prompts/{name}/render" in paths
    assert "/api/v1/prompts/{name}/promotions" in paths
    assert "423" in schema["paths"]["/api/v1/prompts/{name}/resolve"]["get"]["responses"]


def test_names_with_reserved_words_cannot_shadow_routes(released, read_client):
    assert read_client.get(f"{BASE}/support/triage-summary").json()["name"] == "support/triage-summary"
    assert read_client.get(f"{BASE}/support").status_code == 404


def test_a_chat_prompt_through_the_api(write_client):
    messages = [{"role": "system", "content": "You help with {{ product }}."},
                {"role": "user", "content": "{{ question }}"}]
    created = write_client.post(BASE, {"name": "support/api-chat", "team": "support-ai", "type": "chat",
                                       "version": {"messages": messages}}, content_type="application/json")
    assert created.status_code == 201, created.content
    rendered = write_client.post(f"{BASE}/support/api-chat/render",
                                 {"label": "latest", "variables": {"product": "Portal", "question": "How?"}},
                                 content_type="application/json")
    assert rendered.json()["messages"] == [{"role": "system", "content": "You help with Portal."},
                                           {"role": "user", "content": "How?"}]
    resolved = write_client.get(f"{BASE}/support/api-chat/resolve?label=latest").json()
    assert resolved["messages"] == messages and "template" not in resolved


def test_label_at_takes_any_utc_offset_python_accepts_not_only_postgresqls(released, read_client):
    # +22:06 is a valid ISO offset that PostgreSQL refuses (it stops at ±15:59): the time is compared in UTC
    response = read_client.get(f"{BASE}/support/triage-summary/labels/production/at",
                               {"t": "2020-05-16T22:49:44+22:06"})
    assert response.status_code == 200, response.content
    assert response.json()["version"] is None  # the label did not exist in 2020


def test_label_at_a_time_outside_the_calendar_is_a_422_naming_t(released, read_client):
    response = read_client.get(f"{BASE}/support/triage-summary/labels/production/at",
                               {"t": "0001-01-01T00:00:00+05:00"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "t"
