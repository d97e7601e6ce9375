"""Provider keys: encrypted at rest, readable only through a masked Secret, never on a page."""

import pytest
from django.db import connection

from apps.llm.crypto import Secret, decrypt_secret, encrypt_secret, provider_api_key
from apps.llm.errors import AuthenticationFailed
from apps.llm.models import Provider
from apps.llm.services import provider_create, provider_update
from tests.llm.conftest import OPENAI_KEY


def raw_column(provider) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key_encrypted FROM llm_provider WHERE id = %s", [provider.pk])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_the_key_is_encrypted_at_rest(openai_provider):
    stored = raw_column(openai_provider)

    assert stored and OPENAI_KEY not in stored
    assert provider_api_key(Provider.objects.get(pk=openai_provider.pk)).reveal() == OPENAI_KEY


def test_each_encryption_differs_and_round_trips():
    first, second = encrypt_secret("sk-same"), encrypt_secret("sk-same")

    assert first != second
    assert decrypt_secret(first).reveal() == decrypt_secret(second).reveal() == "sk-same"


def test_a_secret_never_prints_itself():
    secret = Secret("sk-live-123456")

    assert "sk-live" not in repr(secret) and "sk-live" not in str(secret) and "sk-live" not in f"{secret}"
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(secret)


def test_a_configured_encryption_key_is_used_and_rotation_keeps_old_rows_readable(settings):
    settings.PORTAL_ENCRYPTION_KEY = "first-passphrase"
    token = encrypt_secret("sk-rotating")

    settings.PORTAL_ENCRYPTION_KEY = "second-passphrase,first-passphrase"
    assert decrypt_secret(token).reveal() == "sk-rotating"

    settings.PORTAL_ENCRYPTION_KEY = "second-passphrase"
    with pytest.raises(AuthenticationFailed, match="cannot be decrypted"):
        decrypt_secret(token)


def test_rows_written_with_the_secret_key_default_survive_introducing_an_encryption_key(settings):
    settings.PORTAL_ENCRYPTION_KEY = None
    token = encrypt_secret("sk-before")

    settings.PORTAL_ENCRYPTION_KEY = "a-new-key"
    assert decrypt_secret(token).reveal() == "sk-before"


@pytest.mark.django_db
def test_a_changed_secret_key_gives_a_readable_error(settings, openai_provider):
    settings.PORTAL_ENCRYPTION_KEY = None
    token = encrypt_secret("sk-before")
    settings.SECRET_KEY = "another-secret-key"

    with pytest.raises(AuthenticationFailed, match="cannot be decrypted"):
        decrypt_secret(token)
    with pytest.raises(AuthenticationFailed, match="provider openai .* Set the key again on the Models page"):
        provider_api_key(openai_provider)


@pytest.mark.django_db
def test_a_key_can_come_from_an_environment_variable(monkeypatch):
    provider = provider_create(name="openai-env", kind="openai", api_key_env="TEAM_OPENAI_API_KEY")
    monkeypatch.setenv("TEAM_OPENAI_API_KEY", "sk-from-env")

    assert provider_api_key(provider).reveal() == "sk-from-env"
    assert raw_column(provider) == ""

    monkeypatch.delenv("TEAM_OPENAI_API_KEY")
    with pytest.raises(AuthenticationFailed, match=r"\$TEAM_OPENAI_API_KEY, which is not set"):
        provider_api_key(provider)


@pytest.mark.django_db
def test_the_key_appears_on_no_page(client_for, admin_user, openai_provider, gpt4o_mini):
    provider_update(provider=openai_provider, api_key="sk-replaced-9f8e7d6c5b4a")
    admin = client_for(admin_user)

    pages = [admin.get("/models/"), admin.get(f"/models/providers/{openai_provider.pk}/edit/"),
             admin.get("/api/v1/llm/providers"), admin.get("/audit/")]

    for page in pages:
        assert page.status_code == 200
        body = page.content.decode()
        assert "sk-replaced" not in body and OPENAI_KEY not in body
        assert raw_column(openai_provider) not in body  # not even the ciphertext
