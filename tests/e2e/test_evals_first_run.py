"""The first eval run, in Chromium: choosing the version and the dataset prefills the input map; a map that
cannot render the first item is refused next to the field, nothing queued; the prefilled one starts."""

import json

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in


@pytest.fixture
def refund_setup(demo_people):
    """Like the demo's support/refund-policy-qa × support/refund-golden: the passages go into `policy`."""
    from apps.accounts.models import Team
    from apps.evals.datasets import dataset_create, dataset_items_add
    from apps.evals.services import evaluator_create
    from apps.prompts.content import Draft
    from apps.prompts.services import prompt_create
    from portal.demo import seed_demo_models

    seed_demo_models()
    team, evan = Team.objects.get(slug="support-ai"), demo_people["evan"]
    prompt = prompt_create(team=team, name="support/e2e-refund-qa", actor=evan, commit_message="first",
                           draft=Draft(kind="text", config={"model": "local-extractive"},
                                       template="Context:\n{{ policy }}\n\nQuestion: {{ question }}"))
    dataset = dataset_create(team=team, name="support/e2e-refund-golden", input_names=["question"], actor=evan)
    dataset_items_add(dataset=dataset, actor=evan, items=[
        {"id": "refund", "inputs": {"question": "How long does a refund take?"}, "expected": "5 business days.",
         "contexts": ["Refunds are paid back within 5 business days."]}])
    evaluator_create(team=team, name="cites-a-passage", kind="citation", actor=evan)
    return {"prompt": prompt, "dataset": dataset}


def test_the_first_run_gets_a_working_input_map_and_a_broken_one_is_refused(page, refund_setup):
    log_in(page, "evan")
    page.goto("/evals/runs/new/")
    page.get_by_label("Prompt version").select_option(label="support/e2e-refund-qa v1")
    page.get_by_label("Dataset").select_option(label="support/e2e-refund-golden (r1)")
    mapping = page.get_by_label("Input map")
    expect(mapping).to_have_value(json.dumps({"policy": "context"}, indent=1))
    page.wait_for_load_state("networkidle")  # no later suggestion may refill the map after we empty it
    page.get_by_label("cites-a-passage v1 · citation").check()

    mapping.fill("")
    page.get_by_role("button", name="Start run").click()
    error = page.locator("#input-map-field .field-error")
    expect(error).to_contain_text("missing variable 'policy'")
    expect(error).to_contain_text("context, contexts, question")
    expect(page.get_by_label("Input map")).to_have_value(json.dumps({"policy": "context"}))  # suggested again

    page.get_by_role("button", name="Start run").click()
    expect(page.get_by_role("status")).to_contain_text("queued: 1 call(s)")
