"""manage.py create_api_token: the token alone on stdout; clear errors for every mistake."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from apps.accounts.models import ApiToken
from apps.accounts.services import hash_token
from apps.audit.models import AuditEvent


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_prints_only_the_token_and_it_works(team, engineer):
    out, err = run("--user", "evan-engineer", "--team", "support-ai", "--scope", "write", "--days", "7",
                   "--name", "ci-pipeline")
    secret = out.strip()
    assert out == secret + "\n" and secret.startswith("gp_")
    token = ApiToken.objects.get(key_hash=hash_token(secret))
    assert (token.user, token.team, token.scope, token.name) == (engineer, team, "write", "ci-pipeline")
    assert f"gp_{token.key_id}" in err and secret not in err
    response = Client().get("/api/v1/accounts/me", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 200 and response.json()["token_team"] == "support-ai"


@pytest.mark.django_db
def test_defaults_and_the_audit_event(team, engineer):
    out, _ = run("--user", "evan-engineer", "--team", "support-ai")
    token = ApiToken.objects.get(key_hash=hash_token(out.strip()))
    assert (token.scope, token.name) == ("read", "cli-support-ai")
    assert 89 <= (token.expires_at - token.created_at).days <= 90
    event = AuditEvent.objects.get(action="api_token.create", object_id=str(token.pk))
    assert event.actor_label == "system" and event.changes["user"] == "evan-engineer"


@pytest.mark.django_db
@pytest.mark.parametrize(("args", "message"), [
    (["--user", "who", "--team", "support-ai"], "No user 'who'"),
    (["--user", "evan-engineer", "--team", "nope"], "No team with the slug 'nope'"),
    (["--user", "oscar-other", "--team", "support-ai"], "oscar-other is not a member of support-ai"),
    (["--user", "evan-engineer", "--team", "support-ai", "--scope", "admin"], "Unknown scope 'admin'"),
    (["--user", "evan-engineer", "--team", "support-ai", "--days", "0"], "days: Every token expires"),
    (["--user", "pat-pm", "--team", "support-ai", "--scope", "write"], "can create read tokens only"),
])
def test_mistakes_are_clear_command_errors_and_create_nothing(team, engineer, viewer, outsider, args, message):
    before = AuditEvent.objects.count()
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert not ApiToken.objects.exists() and AuditEvent.objects.count() == before
