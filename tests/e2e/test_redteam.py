"""A red-team campaign from an engineer's side: launch it on a prompt version, watch its progress on the page,
triage a finding "to fix" and turn it into an eval dataset item in one click; then one on a gateway key, whose
attacks go through the real front door, where the key's injection guardrail blocks some."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.gateway.conftest import gateway_server, gateway_url  # noqa: F401  (fixtures)


@pytest.fixture
def redteam_setup(demo_people, celery_worker, llm_standin, monkeypatch, gateway_url, settings):  # noqa: F811
    from apps.accounts.models import Team
    from apps.evals.datasets import dataset_create
    from apps.gateway.services import gateway_key_create, gateway_key_guardrails_set
    from apps.prompts.content import Draft
    from apps.prompts.services import prompt_create
    from apps.redteam import library_glue
    from tests.redteam.conftest import PROBES, expand, scripted_responder
    from tests.support.standin import standin_model, standin_provider

    monkeypatch.setattr(library_glue, "library_versions", lambda: ["test-v1"])
    monkeypatch.setattr(library_glue, "library_probes", lambda version: list(PROBES))
    monkeypatch.setattr(library_glue, "strategy_names", lambda: ["plain", "base64", "document"])
    monkeypatch.setattr(library_glue, "expand_attacks", expand)
    monkeypatch.setattr(llm_standin.standin, "responder", scripted_responder)
    standin_model(standin_provider(llm_standin, name="rt-e2e"), "rt-e2e-chat")
    team, evan = Team.objects.get(slug="support-ai"), demo_people["evan"]
    settings.GATEWAY_BASE_URL = gateway_url
    key = gateway_key_create(team=team, name="rt-e2e-app", feature="support-bot", allowed_aliases=["rt-e2e-chat"]).key
    gateway_key_guardrails_set(key=key, guard_injection="block")
    prompt_create(team=team, name="support/e2e-rt-assistant", actor=evan, commit_message="first", kind="chat",
                  draft=Draft(kind="chat", config={"model": "rt-e2e-chat"}, messages=[
                      {"role": "system", "content": "You help Acme customers."},
                      {"role": "user", "content": "{{ question }}"}]))
    return dataset_create(team=team, name="support/e2e-rt-regressions", input_names=["question"], actor=evan)


def test_launch_a_campaign_watch_it_and_triage_a_finding_into_a_dataset_item(page, redteam_setup):
    from apps.evals.models import DatasetItem

    log_in(page, "evan")
    page.get_by_role("navigation").get_by_role("link", name="Red team").click()
    page.get_by_role("link", name="Launch a campaign").click()
    page.get_by_label("Name").fill("e2e injection sweep")
    page.get_by_label("Prompt version").select_option(label="support/e2e-rt-assistant v1")
    page.get_by_label("Attack variable").fill("question")
    page.get_by_label("Model", exact=True).fill("rt-e2e-chat")
    page.get_by_label("Probe library").select_option("test-v1")
    page.get_by_label("document").check()
    page.get_by_role("button", name="Launch").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("e2e injection sweep")
    expect(page.locator("#campaign-progress")).to_have_attribute("data-status", "finished", timeout=60_000)
    page.get_by_role("link", name="Show the results").click()
    expect(page.locator("#overall-asr")).to_be_visible()

    finding = page.locator("#finding-table tbody tr").first
    finding.get_by_label("Triage").select_option("to_fix")
    finding.get_by_role("button", name="Save").click()
    finding = page.locator("#finding-table tbody tr[data-triage=to_fix]").first
    expect(finding).to_contain_text("To fix")
    finding.get_by_role("button", name="Add to eval dataset").click()
    expect(page.locator("#finding-table")).to_contain_text("In dataset:")
    assert DatasetItem.objects.filter(dataset=redteam_setup, tags__contains=["redteam"]).count() == 1

    page.get_by_role("navigation").get_by_role("link", name="Red team").click()
    page.get_by_role("link", name="Launch a campaign").click()
    page.get_by_label("Name").fill("e2e front door")
    page.get_by_label("Target", exact=True).select_option("gateway_key")
    page.get_by_label("Gateway key", exact=True).select_option(label="rt-e2e-app (Support AI)")
    page.get_by_label("System prompt (gateway target)").fill("You help Acme customers.")
    page.get_by_label("Model", exact=True).fill("rt-e2e-chat")
    page.get_by_label("Probe library").select_option("test-v1")
    page.get_by_role("button", name="Launch").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("e2e front door")
    expect(page.locator("#campaign-progress")).to_have_attribute("data-status", "finished", timeout=60_000)
    page.reload()
    expect(page.locator("#blocked-by-gateway")).to_contain_text("blocked by the gateway's guardrails")
