"""GET /api/v1/llm/models for everyone signed in; GET /api/v1/llm/providers for admins, never with a secret."""

import pytest

from tests.llm.conftest import OPENAI_KEY

pytestmark = pytest.mark.django_db


def test_models_lists_active_models_with_their_current_price(client_for, viewer, local_models, gpt4o_mini,
                                                             gpt4o_mini_price):
    body = client_for(viewer).get("/api/v1/llm/models").json()

    by_name = {m["name"]: m for m in body}
    assert by_name["gpt-4o-mini"]["price"]["input_per_mtok"] == "0.150000"
    assert by_name["gpt-4o-mini"]["price"]["cached_input_per_mtok"] == "0.075000"
    assert by_name["local-extractive"]["price"] is None  # unpriced: null, not 0
    assert by_name["local-minilm"]["embedding_dimensions"] == 384
    assert [m["name"] for m in client_for(viewer).get("/api/v1/llm/models?kind=embedding").json()] == ["local-minilm"]


def test_models_works_with_a_read_token(client, engineer, team, token_for, local_models):
    _, secret = token_for(engineer, team, "read")

    response = client.get("/api/v1/llm/models", HTTP_AUTHORIZATION=f"Bearer {secret}")

    assert response.status_code == 200 and len(response.json()) == 2


def test_providers_are_for_admins_and_carry_no_secret(client_for, admin_user, engineer, openai_provider):
    response = client_for(admin_user).get("/api/v1/llm/providers")

    assert response.status_code == 200
    (provider,) = response.json()
    assert provider["name"] == "openai" and provider["key_source"] == "stored"
    assert "api_key_encrypted" not in provider
    assert OPENAI_KEY not in response.content.decode()
    assert openai_provider.api_key_encrypted not in response.content.decode()

    assert client_for(engineer).get("/api/v1/llm/providers").status_code == 403


def test_providers_refuse_tokens_even_of_admins(client, admin_user, team, token_for, openai_provider):
    from tests.factories import MembershipFactory

    MembershipFactory(team=team, user=admin_user, role="owner")
    _, secret = token_for(admin_user, team, "read")

    assert client.get("/api/v1/llm/providers", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 403
    assert client.get("/api/v1/llm/providers").status_code == 401
