"""The playground: runs on the offline model, side by side, recorded as playground usage; SSE streaming."""

import json

import pytest
from django.urls import reverse

from apps.costs.models import UsageEvent
from apps.prompts.content import Draft
from apps.prompts.models import PlaygroundRun
from apps.prompts.registry import register_playground_action


@pytest.fixture(autouse=True)
def local_models(db):
    from apps.llm.services import catalog_seed_local

    catalog_seed_local()


@pytest.fixture
def prompt(make_prompt, add_version):
    prompt = make_prompt(template="Summarise for {{ customer }}. The printer is on fire. <ticket>{{ ticket }}</ticket>")
    add_version(prompt, "Two: {{ customer }} says <ticket>{{ ticket }}</ticket>. Keep it short.")
    return prompt


def _url(prompt, number=1):
    return reverse("prompts:playground", args=[prompt.name, number])


def test_the_form_is_built_from_the_variables(prompt, client_for, engineer):
    response = client_for(engineer).get(_url(prompt))
    html = response.content.decode()
    assert 'name="var_customer"' in html and 'name="var_ticket"' in html
    assert 'value="local-extractive"' in html


def test_a_run_without_javascript_renders_the_output_tokens_latency_and_cost(prompt, client_for, engineer):
    response = client_for(engineer).post(_url(prompt), {"var_customer": "ACME", "var_ticket": "Paper jam",
                                                        "models": ["local-extractive"]})
    assert response.status_code == 200, response.content.decode()[:1000]
    run = PlaygroundRun.objects.get()
    assert run.status == "ok" and run.output and run.input_tokens > 0 and run.user == engineer
    assert run.inputs == {"customer": "ACME", "ticket": "Paper jam"}
    html = response.content.decode()
    assert f"{run.input_tokens} in · {run.output_tokens} out" in html and f"{run.latency_ms} ms" in html
    event = UsageEvent.objects.get(request_id=run.request_id)
    assert (event.source, event.prompt_name, event.prompt_version, event.team_id) == \
        ("playground", prompt.name, 1, prompt.team_id)


def test_a_version_that_opts_in_to_the_response_cache_is_answered_from_it_the_second_time(make_prompt, client_for,
                                                                                          engineer):
    from apps.core import redis as portal_redis

    for name in portal_redis.client().scan_iter(portal_redis.key("gateway", "cache", "*")):
        portal_redis.client().delete(name)  # entries of an earlier test's team (a new test database reuses ids)
    prompt = make_prompt(name="support/cached", draft=Draft(kind="text", template="For {{ customer }}: {{ ticket }}",
                                                            config={"temperature": 0, "cache": True}))
    for _ in range(2):
        response = client_for(engineer).post(_url(prompt), {"var_customer": "ACME", "var_ticket": "Paper jam",
                                                            "models": ["local-extractive"]})
        assert response.status_code == 200
    first, second = PlaygroundRun.objects.order_by("id")
    assert second.status == "ok" and second.output == first.output
    events = {e.request_id: e for e in UsageEvent.objects.all()}
    assert not events[first.request_id].cache_hit and events[second.request_id].cache_hit
    assert events[second.request_id].cost == 0 and second.cost == 0


def test_two_versions_are_compared_on_the_same_inputs(prompt, client_for, engineer):
    response = client_for(engineer).post(_url(prompt), {"var_customer": "ACME", "var_ticket": "Jam",
                                                        "models": ["local-extractive"], "compare": "2"})
    assert response.status_code == 200
    runs = list(PlaygroundRun.objects.order_by("id"))
    assert [r.version.number for r in runs] == [1, 2]
    assert runs[0].batch == runs[1].batch and runs[0].inputs == runs[1].inputs
    assert runs[0].rendered != runs[1].rendered


def test_missing_inputs_are_named_and_nothing_is_called(prompt, client_for, engineer):
    response = client_for(engineer).post(_url(prompt), {"var_customer": "ACME", "models": ["local-extractive"]})
    assert response.status_code == 422
    assert "missing variable &#x27;ticket&#x27;" in response.content.decode()
    assert not PlaygroundRun.objects.exists() and not UsageEvent.objects.exists()


def test_an_unknown_model_is_refused(prompt, client_for, engineer):
    response = client_for(engineer).post(_url(prompt), {"var_customer": "A", "var_ticket": "B", "models": ["gpt-9"]})
    assert response.status_code == 422 and "Not in the catalog" in response.content.decode()


def test_a_model_error_shows_on_the_card_not_as_a_500(prompt, client_for, engineer, add_version):
    from apps.prompts.services import version_create
    from tests.prompts.conftest import text_draft

    v3 = version_create(prompt=prompt, draft=text_draft("{{ customer }} <ticket>{{ ticket }}</ticket>",
                                                       config={"max_tokens": 100000}), actor=engineer).version
    response = client_for(engineer).post(_url(prompt, v3.number), {"var_customer": "A", "var_ticket": "B",
                                                                   "models": ["local-extractive"]})
    assert response.status_code == 200
    run = PlaygroundRun.objects.get()
    assert run.status == "error" and "max_tokens" in run.error
    assert run.error in response.content.decode()


def test_streaming_prepares_runs_then_streams_each_over_sse(prompt, client_for, engineer):
    client = client_for(engineer)
    prepared = client.post(_url(prompt), {"var_customer": "ACME", "var_ticket": "Jam", "models": ["local-extractive"]},
                           HTTP_X_PLAYGROUND_STREAM="1")
    assert prepared.status_code == 200
    run = PlaygroundRun.objects.get()
    assert run.status == "pending" and "data-stream=" in prepared.content.decode()
    stream_url = reverse("prompts:playground_stream", args=[run.batch, 0])
    response = client.get(stream_url)
    assert response["Content-Type"] == "text/event-stream"
    body = b"".join(response.streaming_content).decode()
    events = [block for block in body.split("\n\n") if block]
    deltas = [json.loads(e.split("data: ", 1)[1])["text"] for e in events if e.startswith("event: delta")]
    done = json.loads(events[-1].split("data: ", 1)[1])
    assert events[-1].startswith("event: done") and "".join(deltas) == done["output"]
    run.refresh_from_db()
    assert run.status == "ok" and run.output == done["output"]
    assert UsageEvent.objects.get(request_id=run.request_id).source == "playground"
    again = b"".join(client.get(stream_url).streaming_content).decode()
    assert again.startswith("event: done") and UsageEvent.objects.count() == 1  # a run is called once


def test_only_the_person_who_started_a_run_may_stream_it(prompt, client_for, engineer, engineer2):
    client_for(engineer).post(_url(prompt), {"var_customer": "A", "var_ticket": "B", "models": ["local-extractive"]},
                              HTTP_X_PLAYGROUND_STREAM="1")
    run = PlaygroundRun.objects.get()
    assert client_for(engineer2).get(reverse("prompts:playground_stream", args=[run.batch, 0])).status_code == 404


def test_registered_playground_actions_appear_on_each_run(restore_registry, prompt, client_for, engineer):
    register_playground_action("eval_item", "Save inputs as a dataset item",
                               lambda run, user: f"/evals/datasets/-/from-run/{run.pk}/")
    response = client_for(engineer).post(_url(prompt), {"var_customer": "A", "var_ticket": "B",
                                                        "models": ["local-extractive"]})
    run = PlaygroundRun.objects.get()
    assert f'action="/evals/datasets/-/from-run/{run.pk}/"' in response.content.decode()
    assert "Save inputs as a dataset item" in response.content.decode()
