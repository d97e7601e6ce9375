"""What a new user hits (issue #11), in Chromium: intake errors next to their questions, plain messages on the
vote and condition forms, the RAG answer first with its Markdown rendered safely, the same spend on home and
Costs, the models seen in usage, and the banner while the demo data loads."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in


def test_an_empty_intake_submit_lists_every_missing_answer_by_its_question_and_saves_nothing(page, demo_people):
    from apps.reviews.models import UseCase

    log_in(page, "evan")
    page.goto("/use-cases/new/")
    page.get_by_role("button", name="Save and submit for review").click()
    summary = page.locator("#intake-errors")
    expect(summary).to_contain_text("Not submitted")
    expect(summary).to_contain_text("Nothing was saved")
    # Header and questionnaire errors arrive together, each by the label the person sees.
    expect(summary.get_by_role("link", name="Title")).to_be_visible()
    expect(summary.get_by_role("link", name="Is data sent to a third-party model", exact=False)).to_be_visible()
    expect(summary.get_by_role("link", name="EU AI Act Annex III area")).to_be_visible()
    expect(summary).not_to_contain_text("third party model")
    expect(page.locator('[data-question="annex_iii_area"] .field-error')).to_have_text(
        "This question needs an answer before you submit.")
    summary.get_by_role("link", name="EU AI Act Annex III area").click()
    expect(page.locator("#q-annex_iii_area")).to_be_in_viewport()
    assert not UseCase.objects.filter(created_by=demo_people["evan"]).exists()


@pytest.fixture
def in_review(demo_people):
    from apps.accounts.models import Team
    from apps.reviews import services
    from portal.request_context import acting_as
    from tests.reviews.conftest import ELEVATED_INTERNAL

    evan = demo_people["evan"]
    with acting_as(evan):
        use_case = services.use_case_create(team=Team.objects.get(slug="support-ai"), actor=evan,
                                            title="E2E reply drafts", purpose="Draft replies for agents.",
                                            answers=ELEVATED_INTERNAL, submit=True)
    return use_case


def test_an_empty_vote_and_a_bare_condition_say_what_is_missing_next_to_the_field(page, in_review):
    log_in(page, "sam")
    page.goto(f"/use-cases/{in_review.pk}/")
    page.get_by_label("Rationale *").fill("Fine for internal use.")
    page.get_by_role("button", name="Cast vote").click()
    expect(page.locator("#vote .field-error")).to_have_text(
        "Choose your vote: approve, approve with conditions or reject.")
    expect(page.get_by_label("Rationale *")).to_have_value("Fine for internal use.")
    expect(page.locator("body")).not_to_contain_text("decision: Choose one of")

    page.locator("#add-condition summary").click()
    page.get_by_label("Condition", exact=True).fill("Redaction reviewed")
    page.get_by_label("Kind").select_option("automatic")
    page.get_by_role("button", name="Set condition").click()
    check = page.locator("#add-condition .field:has(#c-pred)")
    expect(check.locator(".field-error")).to_contain_text("Choose the check the portal runs")
    expect(page.locator("body")).not_to_contain_text("Unknown check")
    expect(page.get_by_label("Condition", exact=True)).to_have_value("Redaction reviewed")


XSS_MARKDOWN = ("### Hotel limit\n\nThe limit is **150 euros per night** [1].\n\n"
                "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\"> "
                "[more](javascript:window.__pwned=3)")


def test_the_answer_comes_first_rendered_and_safe_with_clickable_citations(page, demo_people, monkeypatch):
    from apps.accounts.models import Team
    from apps.llm.models import Model, ModelKind, Provider, ProviderKind
    from apps.llm.results import ChatResult, Usage
    from apps.llm.services import catalog_seed_local
    from apps.rag.services import collection_create
    from tests.rag.conftest import add_text

    catalog_seed_local()
    collection = collection_create(team=Team.objects.get(slug="support-ai"), name="E2E answers",
                                   embedding_model="local-minilm", user=demo_people["olivia"])
    add_text(collection, "travel.md", "# Travel\n\n## Hotels\n\nThe hotel limit is 150 euros per night in "
                                      "every city. Book through the travel desk.\n")
    provider = Provider.objects.create(name="e2e-writer", kind=ProviderKind.OPENAI_COMPATIBLE,
                                       base_url="http://127.0.0.1:9/v1")
    collection.answer_model = Model.objects.create(provider=provider, name="e2e-writer", remote_name="m",
                                                   kind=ModelKind.CHAT)
    collection.save()
    monkeypatch.setattr("apps.llm.calls.chat", lambda **kw: ChatResult(
        text=XSS_MARKDOWN, model="e2e-writer", provider="e2e-writer", usage=Usage(), latency_ms=1, cost=None,
        finish_reason="stop", usage_event_id=None, request_id="e2e"))
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    log_in(page, "evan")
    page.goto(f"/rag/{collection.pk}/playground/")
    page.get_by_label("Question").fill("What is the hotel limit per night?")
    page.get_by_role("button", name="Search").click()
    expect(page.locator('[data-config="A"] .rag-hit').first).to_be_visible()
    page.get_by_role("button", name="Generate answer").click()
    answer = page.locator("#rag-answer .rag-answer-text")
    expect(answer.get_by_role("heading", name="Hotel limit")).to_be_visible()
    expect(answer.locator("strong")).to_have_text("150 euros per night")
    expect(answer).not_to_contain_text("###")
    # The answer sits above the chunk cards.
    answer_box = page.locator("#answer-h").bounding_box()
    assert answer_box["y"] < page.locator('[data-config="A"] .rag-hit').first.bounding_box()["y"]
    assert answer_box["y"] < 900
    # The payload is text, never code: nothing ran, no script or image landed, no javascript: link.
    assert page.evaluate("window.__pwned === undefined") and dialogs == []
    expect(answer.locator("script, img")).to_have_count(0)
    expect(answer.locator('a[href^="javascript"]')).to_have_count(0)
    citation = answer.locator("a.cite").first
    chunk_id = citation.get_attribute("data-chunk")
    citation.click()
    expect(page.locator(f"#chunk-{chunk_id}")).to_be_in_viewport()


@pytest.fixture
def month_of_usage(demo_people):
    from datetime import UTC, datetime, timedelta

    from django.utils import timezone

    from apps.accounts.models import Team
    from apps.costs.services import price_set
    from tests.costs.conftest import record

    price_set(model_name="gpt-4o-mini", input_per_mtok="0.15", output_per_mtok="0.60",
              valid_from=datetime(2024, 1, 1, tzinfo=UTC))
    support = Team.objects.get(slug="support-ai")
    now = timezone.now()
    rows = [{"team_id": support.pk, "model": "gpt-4o-mini", "input_tokens": 1_000_000, "output_tokens": 100,
             "occurred_at": now - timedelta(days=d, minutes=5), "request_id": f"e2e-n-{d}"} for d in range(12)]
    rows += [{"team_id": support.pk, "model": "claude-e2e", "input_tokens": 100, "output_tokens": 10,
              "occurred_at": now - timedelta(days=d, minutes=5), "request_id": f"e2e-u-{d}"} for d in range(3)]
    record(*rows)


def test_home_costs_and_models_agree_on_the_last_30_days(page, month_of_usage):
    log_in(page, "pat")
    card = page.get_by_test_id("spend-30d")
    expect(card).to_contain_text("model calls")
    home_figure = card.locator(".figure").inner_text()
    home_line = card.inner_text()
    expect(page.locator("body")).to_contain_text("UTC days")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Costs", exact=True).click()
    costs_card = page.get_by_test_id("spend-30d")
    expect(costs_card.locator(".figure")).to_have_text(home_figure)
    calls = re.search(r"(\d[\d,]*) model calls", home_line).group(1)
    expect(costs_card).to_contain_text(f"{calls} model calls")
    expect(costs_card).to_contain_text("3 unpriced")
    page.goto("/costs/prices/")
    expect(page.get_by_test_id("unpriced-models")).to_contain_text("(3 events, UTC days")
    page.goto("/models/")
    usage = page.locator("#in-usage")
    expect(usage.locator('[data-usage-model="claude-e2e"]')).to_contain_text("ingested usage only")
    expect(usage.locator('[data-usage-model="claude-e2e"]')).to_contain_text("3 unpriced")


def test_home_says_the_demo_is_still_loading_until_it_lands(page, demo_people):
    from django.core.cache import cache

    from portal.demo_status import KEY, TTL_SECONDS

    cache.set(KEY, "1", TTL_SECONDS)
    try:
        log_in(page, "pat")
        expect(page.locator("#demo-loading")).to_contain_text("still loading")
        expect(page.get_by_test_id("glance-demo-loading")).to_be_visible()
        expect(page.get_by_test_id("costs-glance")).not_to_contain_text("No budgets yet")
    finally:
        cache.delete(KEY)
    # The glance refreshes itself; once the load is done the banner goes.
    expect(page.get_by_test_id("glance-demo-loading")).to_have_count(0, timeout=20_000)
    page.reload()
    expect(page.locator("#demo-loading")).to_have_count(0)
