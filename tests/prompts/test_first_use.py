"""What a new user hits on the prompt pages: the current template on the prompt page, an open request shown
before asking again, a confirm step before cancelling, strict variables in the preview, and a warning for a
model the catalog does not have."""

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.prompts.models import PromotionStatus
from apps.prompts.services import promotion_request_approve, promotion_request_open

pytestmark = pytest.mark.django_db


@pytest.fixture
def prompt(make_prompt):
    return make_prompt(template="Summarise {{ ticket }} for {{ customer }} in three bullets")


def test_the_prompt_page_shows_the_latest_template_labelled_until_something_is_in_production(
        prompt, add_version, client_for, engineer, engineer2, viewer):
    add_version(prompt, "Summarise {{ ticket }} for {{ customer }} in two bullets")
    html = client_for(viewer).get(reverse("prompts:detail", args=[prompt.name])).content.decode()
    current = html[html.index('id="current-template"'):]
    assert "latest" in current[:400] and "in two bullets" in current and "three bullets" not in current

    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(number=1), actor=engineer)
    promotion_request_approve(request=request, user=engineer2)
    html = client_for(viewer).get(reverse("prompts:detail", args=[prompt.name])).content.decode()
    current = html[html.index('id="current-template"'):]
    assert 'badge ok">production' in current[:400] and "three bullets" in current
    assert "in two bullets" not in current.split("</section>")[0]


def test_an_open_request_is_shown_with_its_link_before_asking_again(prompt, client_for, engineer, viewer):
    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer)
    link = f'href="{reverse("prompts:request", args=[request.pk])}"'
    client = client_for(engineer)
    for url in (reverse("prompts:version", args=[prompt.name, 1]), reverse("prompts:promote", args=[prompt.name]),
                reverse("prompts:detail", args=[prompt.name])):
        html = client.get(url).content.decode()
        assert 'data-testid="open-request"' in html and link in html, url
    # a viewer cannot ask, so is not told
    html = client_for(viewer).get(reverse("prompts:version", args=[prompt.name, 1])).content.decode()
    assert 'data-testid="open-request"' not in html


def test_cancel_asks_for_confirmation_first_and_only_the_post_cancels(prompt, client_for, engineer, engineer2):
    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer)
    url = reverse("prompts:request_cancel", args=[request.pk])
    client = client_for(engineer)
    page = client.get(reverse("prompts:request", args=[request.pk])).content.decode()
    assert f'href="{url}"' in page and "onclick" not in page  # a link to the confirm step, no inline script

    confirm = client.get(url)
    assert confirm.status_code == 200 and "Yes, cancel request" in confirm.content.decode()
    request.refresh_from_db()
    assert request.status == PromotionStatus.OPEN and not AuditEvent.objects.filter(
        action="prompt.promotion.cancel").exists()

    # someone who may not cancel is sent back with the reason, nothing changes
    refused = client_for(engineer2).get(url, follow=True)
    assert "Only the requester or an owner" in refused.content.decode()

    client.post(url, {"comment": "wrong version"})
    request.refresh_from_db()
    assert request.status == PromotionStatus.CANCELLED and request.close_comment == "wrong version"
    assert AuditEvent.objects.filter(action="prompt.promotion.cancel").count() == 1


def test_an_empty_variable_in_the_preview_is_an_error_next_to_its_field(prompt, client_for, viewer):
    url = reverse("prompts:version_render", args=[prompt.name, 1])
    client = client_for(viewer)
    fragment = client.post(url, {"var_ticket": "Printer on fire", "var_customer": ""},
                           HTTP_HX_REQUEST="true").content.decode()
    assert "for  in three bullets" not in fragment and "three bullets" not in fragment
    field = fragment[fragment.index('id="var-customer"'):].split("</div>")[0]
    assert "customer is empty" in field and 'role="alert"' in field
    assert ">Printer on fire</textarea>" in fragment  # what was typed is kept

    page = client.post(url, {"var_ticket": " ", "var_customer": "ACME"})  # without JavaScript: a page
    assert page.status_code == 422 and "ticket is empty" in page.content.decode()
    done = client.post(url, {"var_ticket": "Printer on fire", "var_customer": "ACME"}, HTTP_HX_REQUEST="true")
    assert "Summarise Printer on fire for ACME in three bullets" in done.content.decode()


@pytest.fixture
def catalog(db):
    from apps.llm.services import catalog_seed_local

    catalog_seed_local()


def test_a_model_missing_from_the_catalog_is_saved_with_a_warning_naming_the_catalog(prompt, catalog, client_for,
                                                                                     engineer):
    url = reverse("prompts:version_create", args=[prompt.name])
    response = client_for(engineer).post(url, {
        "v-template": "Summarise {{ ticket }} for {{ customer }}", "v-model": "gpt-9-ultra",
        "v-response_format": "text", "v-commit_message": "bigger model", "m-TOTAL_FORMS": "0",
        "m-INITIAL_FORMS": "0"}, follow=True)
    html = response.content.decode()
    assert prompt.versions.filter(number=2, config__model="gpt-9-ultra").exists()  # a warning, not a refusal
    assert "Saved version 2." in html
    assert "&#x27;gpt-9-ultra&#x27; is not an active chat model in the catalog" in html
    assert "local-extractive" in html.split("Catalog chat models:")[1][:200]
    assert 'data-testid="model-warning"' in html  # and it stays on the version page

    ok = client_for(engineer).post(url, {
        "v-template": "Summarise {{ ticket }} for {{ customer }}", "v-model": "local-extractive",
        "v-response_format": "text", "m-TOTAL_FORMS": "0", "m-INITIAL_FORMS": "0"}, follow=True)
    assert "not an active chat model" not in ok.content.decode()


def test_the_api_returns_the_same_warning_with_the_new_version(prompt, catalog, client, engineer, team, token_for):
    _, secret = token_for(engineer, team, scope="write")
    response = client.post(f"/api/v1/prompts/{prompt.name}/versions",
                           {"template": "Summarise {{ ticket }} for {{ customer }}", "config": {"model": "gpt-9-ultra"}},
                           content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 201
    [warning] = response.json()["warnings"]
    assert "'gpt-9-ultra' is not an active chat model" in warning and "local-extractive" in warning
