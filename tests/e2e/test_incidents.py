"""An incident from an engineer's side: declare a Sev2, switch a feature off with one click, see it on "what is
switched now", resolve the incident; and switch a use case off from its own page, see it refuse a portal call, undo."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.e2e.layout import assert_page_usable, at_widths, htmx_swap


@pytest.mark.django_db(transaction=True)
def test_an_engineer_declares_a_sev2_switches_a_feature_off_and_resolves_it(page, demo_people):
    from apps.accounts.models import Team
    from apps.gateway.services import gateway_key_create

    team = Team.objects.get(slug="support-ai")
    key = gateway_key_create(team=team, actor=demo_people["olivia"], name="refund-bot-prod", feature="refund-bot").key

    log_in(page, "evan")
    page.get_by_role("navigation").get_by_role("link", name="Incidents").click()
    page.get_by_role("link", name="Declare an incident").click()
    page.get_by_label("Owning team").select_option(team.slug)
    page.get_by_label("Title", exact=True).fill("Refund bot quotes 60-day refunds")
    page.get_by_label("Type", exact=True).select_option("incorrect_outputs")
    page.get_by_label("Severity", exact=True).select_option(label="Sev2")
    page.get_by_label("Affected features").fill("refund-bot")
    page.get_by_role("button", name="Declare").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Refund bot quotes 60-day refunds")
    expect(page.get_by_test_id("unacknowledged")).to_be_visible()

    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_test_id("unacknowledged")).to_have_count(0)
    page.get_by_label("Switch").select_option("feature_off")
    page.get_by_label("Acts on").select_option("key")
    page.get_by_label("Gateway key").select_option(str(key.pk))
    page.get_by_label("Message the product shows").fill("Refund answers are paused for now.")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("mitigations")).to_contain_text("refund-bot-prod")
    expect(page.get_by_test_id("timeline")).to_contain_text("Feature off on key refund-bot-prod")

    page.get_by_role("link", name="What is switched now").click()
    expect(page.get_by_test_id("switched-now")).to_contain_text("refund-bot-prod")
    page.get_by_test_id("switched-now").get_by_role("link").first.click()

    page.get_by_role("button", name="Mark resolved").click()
    expect(page.get_by_test_id("status")).to_have_text("Resolved")


@pytest.mark.django_db(transaction=True)
def test_a_responder_flips_a_model_fallback_from_the_incident_and_sees_it_switched_now(page, demo_people):
    from apps.accounts.models import Team
    from apps.incidents import services
    from apps.llm.aliases import aliases_seed_local
    from apps.llm.services import catalog_seed_local

    catalog_seed_local()
    aliases_seed_local()
    incident = services.incident_declare(actor=demo_people["evan"], team=Team.objects.get(slug="support-ai"),
                                         title="Chat alias gives stale answers", kind="incorrect_outputs", severity=2)

    log_in(page, "evan")
    page.goto(incident.get_absolute_url())
    page.get_by_label("Switch").select_option("model_fallback")
    # the form shows what a model fallback uses: "Acts on" offers alias and deployment, other switches' fields hide
    expect(page.get_by_label("Acts on").locator("option[value=key]")).to_be_disabled()
    expect(page.get_by_label("Acts on")).to_have_value("alias")
    expect(page.get_by_label("Message the product shows")).to_be_hidden()
    expect(page.get_by_label("Requests / minute (rate limit)")).to_be_hidden()
    expect(page.get_by_label("Gateway key")).to_be_hidden()
    page.get_by_label("Acts on").select_option("deployment")
    expect(page.get_by_label("Deployment id to leave out (model fallback)")).to_be_visible()
    expect(page.get_by_label("Alias or model (model fallback)", exact=True)).to_be_hidden()
    page.get_by_label("Acts on").select_option("alias")
    page.get_by_label("Alias or model (model fallback)", exact=True).fill("chat")
    page.get_by_label("Serve with this alias or model (model fallback)").fill("local-extractive")
    page.get_by_label("Why", exact=True).fill("The chat alias's deployment misbehaves.")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("mitigations")).to_contain_text("served by local-extractive")

    page.get_by_role("link", name="What is switched now").click()
    switched = page.get_by_test_id("switched-now")
    expect(switched).to_contain_text("Model fallback")
    expect(switched).to_contain_text("alias chat")
    expect(switched).to_contain_text("The chat alias's deployment misbehaves.")
    expect(switched).to_contain_text("evan")


@pytest.mark.django_db(transaction=True)
def test_an_engineer_switches_a_use_case_off_from_its_page_sees_it_refuse_and_undoes_it(page, page_log,
                                                                                         demo_people):
    from apps.accounts.models import Team
    from apps.costs.services import UsageContext
    from apps.incidents import services
    from apps.llm import calls
    from apps.llm.services import catalog_seed_local
    from apps.llm.switches import CallRefused
    from apps.reviews.models import State, UseCase

    catalog_seed_local()
    team = Team.objects.get(slug="support-ai")
    use_case = UseCase.objects.create(team=team, title="Refund eligibility assistant", state=State.ACTIVE)
    incident = services.incident_declare(actor=demo_people["evan"], team=team, severity=2, kind="incorrect_outputs",
                                         title="Refund assistant quotes 60-day refunds")

    def portal_call():  # the portal's own call for this use case (as a playground or RAG answer makes it)
        return calls.chat(model="local-extractive", messages=[{"role": "user", "content": "Refund window?"}],
                          context=UsageContext(source="playground", team_id=team.pk, use_case_id=use_case.pk))

    log_in(page, "evan")
    page.goto(use_case.get_absolute_url())
    with htmx_swap(page, "/incidents/switches/"):  # the box opens on demand
        page.get_by_test_id("mitigate-panel").locator("summary").click()
    switches = page.get_by_test_id("object-switches")
    expect(switches).to_contain_text("Nothing is switched on this use case.")
    form = page.get_by_test_id("mitigate-form")
    form.get_by_label("Incident", exact=True).select_option(str(incident.pk))
    form.get_by_label("Switch", exact=True).select_option("feature_off")
    form.get_by_label("Message the product shows").fill("Refund answers are paused for now.")
    form.get_by_label("Why", exact=True).fill("It quotes a 60-day window.")
    with htmx_swap(page, "/incidents/switches/"):
        form.get_by_role("button", name="Apply").click()
    expect(switches).to_contain_text("Refund answers are paused for now.")
    expect(switches).to_contain_text(incident.reference)

    with pytest.raises(CallRefused, match="^Refund answers are paused for now"):
        portal_call()
    page.reload()
    with htmx_swap(page, "/incidents/switches/"):
        page.get_by_test_id("mitigate-panel").locator("summary").click()
    expect(page.get_by_test_id("effect")).to_have_text("1 refused")
    at_widths(page, lambda width: assert_page_usable(page, page_log))

    with htmx_swap(page, "/undo/"):
        page.get_by_test_id("object-switches").get_by_role("button", name="Undo").click()
    expect(page.get_by_test_id("object-switches")).to_contain_text("Nothing is switched on this use case.")
    assert portal_call().text
