"""The first eval run a person starts: the input map is prefilled from the dataset's fields and the prompt's
variables, and a run that cannot render its first item is refused at the mapping field, nothing queued."""

import json

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.evals.models import EvalRun
from apps.prompts.content import Draft
from apps.prompts.services import prompt_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def policy_version(team, engineer, local_models):
    """Like the demo's support/refund-policy-qa: the passages go into `policy`, which no item carries."""
    prompt = prompt_create(team=team, name="support/refund-policy-qa", actor=engineer, commit_message="first",
                           draft=Draft(kind="text", config={"model": "local-extractive"},
                                       template="Context:\n{{ policy }}\n\nQuestion: {{ question }}"))
    return prompt.versions.get()


def _form(version, dataset, evaluator, input_map):
    return {"version": version.pk, "dataset": dataset.pk, "evaluators": [evaluator.pk], "repetitions": 1,
            "concurrency": 2, "input_map": input_map}


def test_the_form_prefills_the_map_from_the_item_fields_and_the_prompt_variables(client_for, engineer,
                                                                                 policy_version, dataset):
    client = client_for(engineer)
    page = client.get(reverse("evals:run_create"), {"version": policy_version.pk, "dataset": dataset.pk})
    assert page.context["form"].initial["input_map"] == {"policy": "context"}
    # choosing a version or dataset refills the map (htmx fragment of the same page)
    fragment = client.get(reverse("evals:run_create"), {"version": policy_version.pk, "dataset": dataset.pk},
                          HTTP_HX_REQUEST="true").content.decode()
    assert fragment.startswith('<div id="input-map-field">') and "&quot;policy&quot;: &quot;context&quot;" in fragment
    html = client.get(reverse("evals:run_create")).content.decode()
    assert 'hx-get="/evals/runs/new/"' in html and 'hx-target="#input-map-field"' in html


def test_the_gate_mapping_for_that_dataset_wins(policy_version, dataset, make_evaluator, engineer):
    from apps.evals.gates import gate_set
    from apps.evals.selectors import input_map_prefill

    gate_set(prompt=policy_version.prompt, actor=engineer, evaluators=[make_evaluator("c", "citation")],
             datasets=[{"dataset": dataset, "input_map": {"policy": "contexts"}}])
    assert input_map_prefill(version=policy_version, dataset=dataset) == {"policy": "contexts"}


def test_a_run_that_cannot_render_its_first_item_is_refused_next_to_the_map(client_for, engineer, policy_version,
                                                                            dataset, make_evaluator):
    evaluator = make_evaluator("cites", "citation")
    client = client_for(engineer)
    response = client.post(reverse("evals:run_create"), _form(policy_version, dataset, evaluator, ""))
    assert response.status_code == 422
    errors = response.context["form"].errors["input_map"]
    assert "missing variable 'policy'" in errors[0] and "context, contexts, question" in errors[0]
    assert not EvalRun.objects.exists() and not AuditEvent.objects.filter(action="eval.run.create").exists()
    html = response.content.decode()
    assert "A suggested map is filled in" in html  # the suggestion, for the next attempt

    response = client.post(reverse("evals:run_create"), _form(policy_version, dataset, evaluator,
                                                              json.dumps({"policy": "nope"})))
    assert response.status_code == 422 and "missing variable 'policy'" in response.context["form"].errors[
        "input_map"][0]

    response = client.post(reverse("evals:run_create"), _form(policy_version, dataset, evaluator,
                                                              json.dumps({"policy": "context"})))
    assert response.status_code == 302 and EvalRun.objects.get().input_map == {"policy": "context"}


def test_the_api_refuses_the_same_run_with_the_reason(engineer, team, token_for, client, policy_version, dataset,
                                                      make_evaluator):
    evaluator = make_evaluator("cites", "citation")
    _, secret = token_for(engineer, team, scope="write")
    response = client.post("/api/v1/evals/runs", {"prompt": policy_version.prompt.name, "version": 1,
                                                  "dataset": dataset.pk, "evaluators": [evaluator.pk]},
                           content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code in (400, 422) and "missing variable 'policy'" in response.content.decode()
    assert not EvalRun.objects.exists()
