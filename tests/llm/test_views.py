"""Models & prices page: everyone reads, admins edit; bad input is answered next to the field and changes nothing."""

from decimal import Decimal

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.costs.models import Price
from apps.costs.services import price_set
from apps.llm.models import Model, Provider

pytestmark = pytest.mark.django_db

NEW_PROVIDER = {"name": "openai-prod", "kind": "openai", "api_key": "sk-live-abcdef123456", "api_key_env": "",
                "base_url": "", "api_version": "", "timeout_seconds": "30", "max_retries": "3", "is_active": "on"}


def post_endpoints(provider, model):
    return [
        ("/models/providers/new/", NEW_PROVIDER),
        (f"/models/providers/{provider.pk}/edit/", {"kind": "local", "timeout_seconds": "5", "max_retries": "0"}),
        (f"/models/providers/{provider.pk}/test/", {}),
        ("/models/new/", {"provider": provider.pk, "name": "x", "remote_name": "x", "kind": "chat",
                          "context_window": "100", "max_output_tokens": "10"}),
        (f"/models/{model.pk}/edit/", {"remote_name": "local-extractive", "context_window": "100",
                                       "max_output_tokens": "10"}),
        ("/models/prices/new/", {"model_name": "gpt-4o-mini", "input_per_mtok": "1", "output_per_mtok": "2"}),
    ]


def test_the_catalog_lists_providers_models_and_prices_with_unpriced_flagged(client_for, engineer, local_models,
                                                                              gpt4o_mini, gpt4o_mini_price):
    page = client_for(engineer).get("/models/")

    body = page.content.decode()
    assert page.status_code == 200
    assert "Offline extractive (local, no LLM)" in body and "gpt-4o-mini" in body
    assert "$0.15 in · $0.60 out · $0.075 cached" in body
    assert body.count(">unpriced</span>") == 2  # the two local models: no price seeded in this test
    assert "key stored (encrypted)" in body
    assert "Test connection" not in body and "Add provider" not in body  # read-only for non-admins


def test_the_catalog_page_costs_a_fixed_number_of_queries(client_for, admin_user, local_models, gpt4o_mini,
                                                          django_assert_max_num_queries):
    admin = client_for(admin_user)
    with django_assert_max_num_queries(8):
        assert admin.get("/models/").status_code == 200


def test_anonymous_visitors_are_sent_to_log_in(client, local_models):
    provider, model = local_models["provider"], local_models["chat"]
    assert client.get("/models/").status_code == 302
    for url, data in post_endpoints(provider, model):
        response = client.post(url, data)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


@pytest.mark.parametrize("who", ["nobody", "viewer", "engineer", "owner", "council_member"])
def test_only_admins_may_change_the_catalog(request, client_for, local_models, who):
    user = request.getfixturevalue(who)
    provider, model = local_models["provider"], local_models["chat"]
    audit_before = AuditEvent.objects.count()
    c = client_for(user)

    for url, data in post_endpoints(provider, model):
        assert c.post(url, data).status_code == 403, url
    for url in ("/models/providers/new/", f"/models/providers/{provider.pk}/edit/", "/models/new/",
                f"/models/{model.pk}/edit/", "/models/prices/new/"):
        assert c.get(url).status_code == 403, url
    assert AuditEvent.objects.count() == audit_before
    assert not Provider.objects.filter(name="openai-prod").exists()


def test_an_admin_adds_a_provider_and_the_key_is_stored_encrypted(client_for, admin_user):
    response = client_for(admin_user).post("/models/providers/new/", NEW_PROVIDER)

    assert response.status_code == 302 and response["Location"] == "/models/"
    provider = Provider.objects.get(name="openai-prod")
    assert provider.api_key_encrypted and "sk-live" not in provider.api_key_encrypted
    assert AuditEvent.objects.filter(action="llm.provider.create", object_id=str(provider.pk)).count() == 1


def test_an_htmx_post_is_answered_with_hx_location(client_for, admin_user):
    response = client_for(admin_user).post("/models/providers/new/", NEW_PROVIDER, HTTP_HX_REQUEST="true")

    assert response.status_code == 204 and response["HX-Location"] == "/models/"


def test_bad_provider_input_is_shown_next_to_the_field_and_changes_nothing(client_for, admin_user):
    data = {**NEW_PROVIDER, "kind": "azure_openai", "timeout_seconds": "soon"}

    response = client_for(admin_user).post("/models/providers/new/", data)

    assert response.status_code == 400
    body = response.content.decode()
    assert "Enter a number." in body  # timeout, from the form
    assert "sk-live-abcdef123456" not in body  # the key field is never rendered back
    assert not Provider.objects.exists() and not AuditEvent.objects.exists()

    response = client_for(admin_user).post("/models/providers/new/", {**data, "timeout_seconds": "30"})
    body = response.content.decode()
    assert response.status_code == 400
    assert "This kind of provider needs a base URL." in body and "Azure OpenAI needs an api-version" in body
    assert body.index("needs a base URL") > body.index('name="base_url"')  # the message sits with its field
    assert not Provider.objects.exists()


def test_editing_a_provider_keeps_the_key_unless_a_new_one_is_given(client_for, admin_user, openai_provider):
    stored = openai_provider.api_key_encrypted
    admin = client_for(admin_user)
    form = {"kind": "openai", "base_url": "", "api_version": "", "api_key": "", "api_key_env": "",
            "timeout_seconds": "45", "max_retries": "2", "is_active": "on"}

    page = admin.get(f"/models/providers/{openai_provider.pk}/edit/")
    assert "A key is stored (encrypted)" in page.content.decode()
    assert admin.post(f"/models/providers/{openai_provider.pk}/edit/", form).status_code == 302

    provider = Provider.objects.get(pk=openai_provider.pk)
    assert provider.api_key_encrypted == stored and provider.timeout_seconds == 45
    assert AuditEvent.objects.filter(action="llm.provider.update").get().changes == {"timeout_seconds": [30.0, 45.0]}


def test_an_admin_adds_and_edits_a_model(client_for, admin_user, openai_provider):
    admin = client_for(admin_user)
    created = admin.post("/models/new/", {"provider": openai_provider.pk, "name": "gpt-4.1", "remote_name": "gpt-4.1",
                                          "kind": "chat", "context_window": "1000000", "max_output_tokens": "32768",
                                          "is_active": "on"})
    assert created.status_code == 302
    model = Model.objects.get(name="gpt-4.1")

    bad = admin.post(f"/models/{model.pk}/edit/", {"remote_name": "gpt-4.1", "context_window": "100",
                                                   "max_output_tokens": "32768", "is_active": "on"})
    assert bad.status_code == 400 and "Cannot be more than the context window." in bad.content.decode()
    assert Model.objects.get(pk=model.pk).context_window == 1000000

    assert AuditEvent.objects.filter(action="llm.model.create").count() == 1
    assert not AuditEvent.objects.filter(action="llm.model.update").exists()


def test_the_model_page_shows_its_price_history_also_after_a_refused_edit(client_for, admin_user, gpt4o_mini,
                                                                         gpt4o_mini_price):
    admin = client_for(admin_user)
    page = admin.get(f"/models/{gpt4o_mini.pk}/edit/")
    refused = admin.post(f"/models/{gpt4o_mini.pk}/edit/", {"remote_name": "gpt-4o-mini", "context_window": "100",
                                                           "max_output_tokens": "16384", "is_active": "on"})

    assert page.status_code == 200 and refused.status_code == 400
    for body in (page.content.decode(), refused.content.decode()):
        assert "Prices of gpt-4o-mini" in body and "No price yet" not in body
        assert gpt4o_mini_price.valid_from.strftime("%Y-%m-%d") in body


def test_setting_a_price_closes_the_current_one_and_is_audited(client_for, admin_user, gpt4o_mini,
                                                                 gpt4o_mini_price):
    response = client_for(admin_user).post("/models/prices/new/", {
        "model_name": "gpt-4o-mini", "provider": "", "input_per_mtok": "0.20", "output_per_mtok": "0.80",
        "cached_input_per_mtok": "0.10", "reasoning_per_mtok": ""})

    assert response.status_code == 302
    old, new = Price.objects.filter(model_name="gpt-4o-mini").order_by("valid_from")
    assert old.valid_to == new.valid_from and new.valid_to is None
    assert new.input_per_mtok == Decimal("0.20") and new.created_by == admin_user
    assert AuditEvent.objects.filter(action="price.set").count() == 1


@pytest.mark.parametrize("data, message", [
    ({"input_per_mtok": "-1", "output_per_mtok": "1"}, "greater than or equal to 0"),
    ({"input_per_mtok": "abc", "output_per_mtok": "1"}, "Enter a number."),
    ({"output_per_mtok": "1"}, "This field is required."),
    ({"input_per_mtok": "1", "output_per_mtok": "1", "valid_from": "2020-01-01T00:00"}, "already exists"),
])
def test_a_bad_price_is_refused_next_to_its_field(client_for, admin_user, gpt4o_mini_price, data, message):
    response = client_for(admin_user).post("/models/prices/new/", {"model_name": "gpt-4o-mini", **data})

    assert response.status_code == 400
    assert message in response.content.decode()
    assert Price.objects.count() == 1 and not AuditEvent.objects.exists()


def test_the_price_form_shows_the_history(client_for, admin_user, gpt4o_mini_price):
    page = client_for(admin_user).get("/models/prices/new/?model=gpt-4o-mini")

    assert "Price history of gpt-4o-mini" in page.content.decode()
    assert gpt4o_mini_price.valid_from.strftime("%Y-%m-%d") in page.content.decode()


def test_test_connection_answers_an_htmx_fragment_and_writes_nothing(client_for, admin_user, local_models):
    provider = local_models["provider"]
    audit_before = AuditEvent.objects.count()

    response = client_for(admin_user).post(f"/models/providers/{provider.pk}/test/", HTTP_HX_REQUEST="true")

    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body and 'id="conn-' in body and "connected" in body and "384-d" in body
    assert AuditEvent.objects.count() == audit_before


def test_test_connection_without_htmx_redirects_with_the_result(client_for, admin_user, replay, openai_provider):
    replay("unauthorized")
    admin = client_for(admin_user)

    response = admin.post(f"/models/providers/{openai_provider.pk}/test/", follow=True)

    assert "rejected the API key" in response.content.decode()


def test_the_price_is_shown_as_it_is_now(client_for, viewer, gpt4o_mini, gpt4o_mini_price):
    price_set(model_name="gpt-4o-mini", input_per_mtok="9", output_per_mtok="9",
              valid_from=timezone.now() + timezone.timedelta(days=30))  # announced, not yet valid

    body = client_for(viewer).get("/models/").content.decode()

    assert "$0.15 in" in body and "$9.00 in" not in body


def test_audit_events_of_providers_and_models_link_to_the_catalog(local_models):
    from apps.audit.links import attach_links

    events = attach_links(AuditEvent.objects.filter(action__startswith="llm.").order_by("id"))

    provider, chat = local_models["provider"], local_models["chat"]
    urls = {(e.object_type, e.object_id): e.object_url for e in events}
    assert urls[("llm.provider", str(provider.pk))] == f"/models/#provider-{provider.pk}"
    assert urls[("llm.model", str(chat.pk))] == f"/models/#model-{chat.pk}"
