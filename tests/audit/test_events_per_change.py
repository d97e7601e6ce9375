"""Every state change of accounts (through the page people use) leaves exactly one audit event."""

import io

import pytest
from django.core.management import call_command

from apps.accounts.services import council_seat_set
from apps.audit.models import AuditEvent
from apps.audit.services import audit_chain_verify, chain_verification_run
from tests.factories import DEFAULT_PASSWORD


def _team_create(w):
    w.client_for(w.admin_user).post("/accounts/teams/new/", {"name": "Fraud", "slug": "", "description": "",
                                                             "owner": "nina-nobody"})


def _member_add(w):
    w.client_for(w.owner).post("/accounts/teams/support-ai/members/", {"username": "nina-nobody", "role": "viewer"})


def _member_change(w):
    w.client_for(w.owner).post(f"/accounts/teams/support-ai/members/{w.engineer.pk}/role/", {"role": "viewer"})


def _member_remove(w):
    w.client_for(w.owner).post(f"/accounts/teams/support-ai/members/{w.engineer.pk}/remove/")


def _seat(w):
    council_seat_set(user=w.nobody, seat="legal", actor=w.admin_user)


def _token_create(w):
    w.client_for(w.engineer).post("/accounts/teams/support-ai/tokens/new/",
                                  {"name": "ci", "scope": "read", "days": "5"})


def _token_revoke(w):
    w.client_for(w.engineer).post(f"/accounts/teams/support-ai/tokens/{w.token.pk}/revoke/")


def _token_cli(w):
    call_command("create_api_token", "--user", "evan-engineer", "--team", "support-ai", stdout=io.StringIO(),
                 stderr=io.StringIO())


def _password(w):
    w.client_for(w.engineer).post("/accounts/password/", {
        "old_password": DEFAULT_PASSWORD, "new_password1": "quite-a-long-passphrase",
        "new_password2": "quite-a-long-passphrase"})


def _verification(w):
    from apps.audit.models import ChainVerification

    run = ChainVerification.objects.create(requested_by=w.admin_user)
    chain_verification_run(run.pk)


CHANGES = {
    # name: (do it, the action recorded, the actor recorded)
    "team created": (_team_create, "team.create", "ada-admin"),
    "member added": (_member_add, "team.member.add", "olivia-owner"),
    "role changed": (_member_change, "team.member.change", "olivia-owner"),
    "member removed": (_member_remove, "team.member.remove", "olivia-owner"),
    "council seat given": (_seat, "council.seat.set", "ada-admin"),
    "token created": (_token_create, "api_token.create", "evan-engineer"),
    "token created by command": (_token_cli, "api_token.create", "system"),
    "token revoked": (_token_revoke, "api_token.revoke", "evan-engineer"),
    "password changed": (_password, "user.password.change", "evan-engineer"),
    "chain verified": (_verification, "audit.chain.verify", "ada-admin"),
}


@pytest.fixture
def world(team, owner, engineer, viewer, nobody, admin_user, client_for, token_for):
    from types import SimpleNamespace

    token, _ = token_for(engineer, team)
    return SimpleNamespace(team=team, owner=owner, engineer=engineer, nobody=nobody, admin_user=admin_user,
                           client_for=client_for, token=token)


@pytest.mark.django_db
@pytest.mark.parametrize("change", list(CHANGES))
def test_one_event_per_change(change, world):
    do, action, actor = CHANGES[change]
    start = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    do(world)
    new = list(AuditEvent.objects.filter(id__gt=start).values_list("action", "actor_label"))
    assert new == [(action, actor)]
    assert audit_chain_verify().ok
