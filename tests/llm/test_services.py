"""Catalog writes: validated (nothing changes on bad input), audited (never with the key), keys write-only."""

import pytest
from django.core.exceptions import ValidationError

from apps.audit.models import AuditEvent
from apps.llm.models import Model, Provider
from apps.llm.services import (
    catalog_seed_local,
    model_create,
    model_update,
    provider_create,
    provider_test_connection,
    provider_update,
)
from tests.llm.conftest import OPENAI_KEY

pytestmark = pytest.mark.django_db


def audit_log(action):
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def test_creating_a_provider_is_audited_without_the_key(admin_user):
    provider = provider_create(name="openai", kind="openai", api_key=OPENAI_KEY, user=admin_user)

    (event,) = audit_log("llm.provider.create")
    assert event.object_id == str(provider.pk) and event.actor_label == "ada-admin"
    assert event.changes["api_key"] == "set"
    assert OPENAI_KEY not in str(event.changes) and provider.api_key_encrypted not in str(event.changes)


@pytest.mark.parametrize("fields, field, message", [
    ({"kind": "azure_openai", "api_key": "k"}, "base_url", "needs a base URL"),
    ({"kind": "azure_openai", "api_key": "k", "base_url": "https://x.openai.azure.com"}, "api_version",
     "api-version"),
    ({"kind": "openai"}, "api_key", "needs an API key"),
    ({"kind": "openai", "api_key": "k", "api_key_env": "OPENAI_API_KEY"}, "api_key", "not both"),
    ({"kind": "openai", "api_key_env": "SECRET_KEY"}, "api_key_env", "portal's own secrets"),
    ({"kind": "openai", "api_key_env": "lower-case"}, "api_key_env", "environment variable name"),
    ({"kind": "openai", "api_key": "k", "timeout_seconds": 0}, "timeout_seconds", "more than 0"),
    ({"kind": "openai", "api_key": "k", "max_retries": 50}, "max_retries", "At most 10"),
    ({"kind": "local", "api_key": "k"}, "api_key", "needs no key"),
    ({"kind": "nonsense"}, "kind", "not a valid choice"),
])
def test_bad_provider_input_names_the_field_and_creates_nothing(fields, field, message):
    with pytest.raises(ValidationError) as failure:
        provider_create(name="p1", **fields)

    assert message in " ".join(failure.value.message_dict[field])
    assert not Provider.objects.exists() and not AuditEvent.objects.exists()


def test_a_duplicate_provider_name_is_refused(openai_provider):
    with pytest.raises(ValidationError) as failure:
        provider_create(name="openai", kind="openai", api_key="k")
    assert "name" in failure.value.message_dict


def test_the_key_can_be_replaced_and_cleared_and_each_change_is_audited(openai_provider, admin_user):
    before = openai_provider.api_key_encrypted

    replaced = provider_update(provider=openai_provider, api_key="sk-new", user=admin_user)
    assert replaced.api_key_encrypted and replaced.api_key_encrypted != before

    kept = provider_update(provider=replaced, api_key="", timeout_seconds=10.0, user=admin_user)
    assert kept.api_key_encrypted == replaced.api_key_encrypted

    cleared = provider_update(provider=kept, api_key_env="OPENAI_API_KEY", user=admin_user)
    assert cleared.api_key_encrypted == ""  # the env var takes over; no stale key left behind

    changes = [e.changes for e in audit_log("llm.provider.update")]
    assert changes == [{"api_key": "replaced"}, {"timeout_seconds": [30.0, 10.0]},
                       {"api_key": "cleared", "api_key_env": ["", "OPENAI_API_KEY"]}]


def test_an_update_that_changes_nothing_writes_no_audit_event(openai_provider):
    provider_update(provider=openai_provider, timeout_seconds=openai_provider.timeout_seconds)
    assert audit_log("llm.provider.update") == []


def test_a_bad_update_changes_nothing(openai_provider):
    with pytest.raises(ValidationError):
        provider_update(provider=openai_provider, clear_api_key=True, timeout_seconds=5.0)  # OpenAI needs a key

    fresh = Provider.objects.get(pk=openai_provider.pk)
    assert fresh.api_key_encrypted == openai_provider.api_key_encrypted and fresh.timeout_seconds == 30.0


def test_the_provider_name_cannot_change(openai_provider):
    with pytest.raises(ValidationError, match="cannot be changed"):
        provider_update(provider=openai_provider, name="renamed")


def test_models_are_validated_and_audited(openai_provider, admin_user):
    with pytest.raises(ValidationError) as failure:
        model_create(provider=openai_provider, name="te3", remote_name="text-embedding-3-small", kind="embedding")
    assert "embedding_dimensions" in failure.value.message_dict

    with pytest.raises(ValidationError) as failure:
        model_create(provider=openai_provider, name="gpt", remote_name="gpt-4o", kind="chat", context_window=1000,
                     max_output_tokens=2000)
    assert "max_output_tokens" in failure.value.message_dict

    model = model_create(provider=openai_provider, name="gpt-4o", remote_name="gpt-4o", kind="chat",
                         context_window=128000, max_output_tokens=16384, user=admin_user)
    model_update(model=model, display_name="GPT-4o", user=admin_user)

    assert [e.action for e in AuditEvent.objects.filter(object_type="llm.model").order_by("id")] == [
        "llm.model.create", "llm.model.update"]
    assert Model.objects.get(pk=model.pk).display_name == "GPT-4o"


def test_the_offline_provider_only_takes_its_own_models(local_models):
    with pytest.raises(ValidationError) as failure:
        model_create(provider=local_models["provider"], name="local-gpt", remote_name="gpt-4o", kind="chat")
    assert "local-extractive" in failure.value.message_dict["remote_name"][0]


def test_seeding_the_local_catalog_is_idempotent():
    assert catalog_seed_local() == {"providers": 1, "models": 2}
    assert catalog_seed_local() == {"providers": 0, "models": 0}

    chat = Model.objects.get(name="local-extractive")
    assert (chat.kind, chat.context_window, chat.display_name) == ("chat", 8192,
                                                                   "Offline extractive (local, no LLM)")
    embedding = Model.objects.get(name="local-minilm")
    assert (embedding.kind, embedding.embedding_dimensions) == ("embedding", 384)
    assert len(audit_log("llm.model.create")) == 2


def test_testing_the_local_provider_loads_minilm(local_models):
    result = provider_test_connection(local_models["provider"])

    assert result.ok and "384-d" in result.message
    assert not AuditEvent.objects.filter(action__contains="test").exists()


def test_testing_an_openai_provider_lists_its_models(replay, openai_provider, gpt4o_mini):
    http = replay("models_list")
    model_create(provider=openai_provider, name="gpt-9", remote_name="gpt-9", kind="chat")

    result = provider_test_connection(openai_provider)

    assert str(http.requests[0].url) == "https://api.openai.com/v1/models"
    assert result.ok
    assert "3 models are listed" in result.message and "Not offered by the provider: gpt-9" in result.message


def test_a_failed_connection_test_explains_itself(replay, openai_provider):
    replay("unauthorized")

    result = provider_test_connection(openai_provider)

    assert not result.ok and "rejected the API key" in result.message
