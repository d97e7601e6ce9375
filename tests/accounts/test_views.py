"""The accounts pages: what people see, and what a mistake looks like (a message where they look, no change)."""

import re

import pytest
from django.contrib.messages import get_messages

from apps.accounts.models import ApiToken, Membership, Role, Team
from apps.accounts.services import hash_token
from apps.audit.models import AuditEvent
from tests.factories import DEFAULT_PASSWORD, UserFactory

TEAM = "/accounts/teams/support-ai/"


def text(response) -> str:
    return response.content.decode()


def flash(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def as_owner(client_for, owner, engineer, viewer):
    return client_for(owner)


# --- login, logout, password -------------------------------------------------------------------------------


@pytest.mark.django_db
class TestLoginLogoutPassword:
    def test_login_with_the_right_password_goes_home(self, client, engineer):
        response = client.post("/accounts/login/", {"username": "evan-engineer", "password": DEFAULT_PASSWORD})
        assert response.status_code == 302 and response["Location"] == "/"

    def test_a_wrong_password_says_so_on_the_form(self, client, engineer):
        response = client.post("/accounts/login/", {"username": "evan-engineer", "password": "nope"})
        assert response.status_code == 200
        assert "did not match" in text(response)
        assert "_auth_user_id" not in client.session

    def test_login_only_follows_a_local_next(self, client, engineer):
        response = client.post("/accounts/login/?next=https://evil.example/",
                               {"username": "evan-engineer", "password": DEFAULT_PASSWORD,
                                "next": "https://evil.example/"})
        assert response["Location"] == "/"

    def test_logout_is_a_post(self, client_for, engineer):
        client = client_for(engineer)
        assert client.get("/accounts/logout/").status_code == 405
        assert "_auth_user_id" in client.session
        response = client.post("/accounts/logout/")
        assert response.status_code == 302 and "_auth_user_id" not in client.session

    def test_password_change_is_audited_and_keeps_the_session(self, client_for, engineer):
        client = client_for(engineer)
        response = client.post("/accounts/password/", {
            "old_password": DEFAULT_PASSWORD, "new_password1": "a-much-longer-passphrase",
            "new_password2": "a-much-longer-passphrase"})
        assert response.status_code == 302
        assert client.get("/accounts/teams/").status_code == 200  # still logged in
        engineer.refresh_from_db()
        assert engineer.check_password("a-much-longer-passphrase")
        event = AuditEvent.objects.get(action="user.password.change")
        assert (event.actor_label, event.object_id, event.changes) == ("evan-engineer", str(engineer.pk), {})
        assert event.request_id  # tied to the web request

    @pytest.mark.parametrize(("data", "message"), [
        ({"old_password": "wrong", "new_password1": "a-much-longer-passphrase",
          "new_password2": "a-much-longer-passphrase"}, "Your old password was entered incorrectly"),
        ({"old_password": DEFAULT_PASSWORD, "new_password1": "short", "new_password2": "short"}, "too short"),
        ({"old_password": DEFAULT_PASSWORD, "new_password1": "a-much-longer-passphrase",
          "new_password2": "another-long-passphrase"}, "didn’t match"),
    ])
    def test_a_bad_password_change_says_why_and_changes_nothing(self, client_for, engineer, data, message):
        response = client_for(engineer).post("/accounts/password/", data)
        assert response.status_code == 200 and message in text(response)
        engineer.refresh_from_db()
        assert engineer.check_password(DEFAULT_PASSWORD)
        assert not AuditEvent.objects.filter(action="user.password.change").exists()


# --- teams -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestTeamPages:
    def test_the_list_shows_my_teams_with_my_role(self, client_for, engineer, other_team):
        page = text(client_for(engineer).get("/accounts/teams/"))
        assert "Support AI" in page and "Search" not in page and ">engineer<" in page
        assert "New team" not in page

    def test_the_team_page_lists_members_owned_things_and_my_tokens(self, client_for, owner, engineer, viewer,
                                                                     team, token_for):
        token_for(engineer, team, "read")
        token_for(owner, team, "read")
        page = text(client_for(engineer).get(TEAM))
        assert re.search(r"olivia-owner.*evan-engineer.*pat-pm", page, re.S)  # owners first
        assert "What the team owns" in page and "API tokens" in page
        assert "evan-engineer-read" in page and "olivia-owner-read" not in page  # only my own tokens
        assert "Add a member" not in page  # not an owner

    def test_an_owner_sees_every_token_and_the_member_forms(self, as_owner, engineer, team, token_for):
        token_for(engineer, team, "read")
        page = text(as_owner.get(TEAM))
        assert "evan-engineer-read" in page and "Add a member" in page and "Remove" in page

    def test_the_team_page_query_count_does_not_grow_with_members_or_tokens(
            self, client_for, owner, team, token_for, django_assert_max_num_queries):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        client = client_for(owner)
        client.get(TEAM)
        with CaptureQueriesContext(connection) as small:
            client.get(TEAM)
        for i in range(15):
            user = UserFactory(username=f"member-{i}")
            Membership.objects.create(team=team, user=user, role=Role.ENGINEER)
            token_for(user, team, "read")
        with django_assert_max_num_queries(len(small)):
            assert client.get(TEAM).status_code == 200

    def test_a_council_member_reads_the_page_but_gets_no_token_panel(self, client_for, council_member, owner):
        page = text(client_for(council_member).get(TEAM))
        assert "olivia-owner" in page and "New token" not in page and "read only" in page

    def test_an_admin_creates_a_team_with_its_first_owner(self, client_for, admin_user, nobody):
        response = client_for(admin_user).post("/accounts/teams/new/", {
            "name": "Fraud Detection", "slug": "", "description": "", "owner": "nina-nobody"})
        assert response.status_code == 302 and response["Location"] == "/accounts/teams/fraud-detection/"
        team = Team.objects.get(slug="fraud-detection")
        assert Membership.objects.get(team=team).user == nobody
        assert AuditEvent.objects.filter(action="team.create", team_id=team.pk).count() == 1

    @pytest.mark.parametrize(("data", "message"), [
        ({"name": "Search", "slug": "search", "owner": "nina-nobody"}, "already exists"),
        ({"name": "Fraud", "slug": "", "owner": "no-such-person"}, "No user is called"),
        ({"name": "", "slug": "", "owner": "nina-nobody"}, "This field is required"),
    ])
    def test_team_creation_mistakes_are_shown_on_the_form(self, client_for, admin_user, nobody, other_team, data,
                                                          message):
        before = (Team.objects.count(), AuditEvent.objects.count())
        response = client_for(admin_user).post("/accounts/teams/new/", {"description": "", **data})
        assert response.status_code == 400 and message in text(response)
        assert (Team.objects.count(), AuditEvent.objects.count()) == before

    def test_only_admins_create_teams(self, client_for, owner):
        response = client_for(owner).post("/accounts/teams/new/", {"name": "X", "owner": "olivia-owner"})
        assert response.status_code == 403 and not Team.objects.filter(name="X").exists()


# --- members -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestMemberManagement:
    def test_an_owner_adds_a_member(self, as_owner, team, nobody):
        response = as_owner.post(f"{TEAM}members/", {"username": "nina-nobody", "role": "viewer"})
        assert response.status_code == 302
        assert Membership.objects.get(team=team, user=nobody).role == Role.VIEWER
        assert "nina-nobody joined Support AI as viewer." in flash(response)
        event = AuditEvent.objects.get(action="team.member.add")
        assert event.actor_label == "olivia-owner" and event.changes["user"] == "nina-nobody"

    @pytest.mark.parametrize(("data", "message"), [
        ({"username": "nobody-here", "role": "viewer"}, "No user is called &#x27;nobody-here&#x27;"),
        ({"username": "evan-engineer", "role": "viewer"}, "evan-engineer is already a member (Engineer)"),
        ({"username": "nina-nobody", "role": "boss"}, "Select a valid choice"),
        ({"username": "", "role": "viewer"}, "This field is required"),
        ({"username": "ghost", "role": "viewer"}, "ghost is deactivated"),
    ])
    def test_add_mistakes_are_shown_next_to_the_field_and_change_nothing(self, as_owner, team, nobody, data,
                                                                         message):
        UserFactory(username="ghost", is_active=False)
        before = (sorted(Membership.objects.values_list("user_id", "role")), AuditEvent.objects.count())
        response = as_owner.post(f"{TEAM}members/", data)
        assert response.status_code == 400
        page = text(response)
        assert message in page
        assert re.search(r'class="field-error" role="alert">[^<]*' + re.escape(message.split(" ")[0]), page)
        assert (sorted(Membership.objects.values_list("user_id", "role")), AuditEvent.objects.count()) == before

    def test_usernames_are_matched_without_case(self, as_owner, team, nobody):
        as_owner.post(f"{TEAM}members/", {"username": "Nina-Nobody", "role": "viewer"})
        assert Membership.objects.filter(team=team, user=nobody).exists()

    def test_an_owner_changes_a_role(self, as_owner, team, viewer):
        response = as_owner.post(f"{TEAM}members/{viewer.pk}/role/", {"role": "engineer"})
        assert response.status_code == 302 and "pat-pm is now engineer of Support AI." in flash(response)
        assert Membership.objects.get(team=team, user=viewer).role == Role.ENGINEER
        assert AuditEvent.objects.get(action="team.member.change").changes["role"] == ["viewer", "engineer"]

    def test_choosing_the_same_role_says_nothing_changed(self, as_owner, viewer):
        response = as_owner.post(f"{TEAM}members/{viewer.pk}/role/", {"role": "viewer"})
        assert "pat-pm already is viewer: nothing changed." in flash(response)
        assert not AuditEvent.objects.filter(action__startswith="team.member").exists()

    def test_an_unknown_role_is_shown_on_the_members_row(self, as_owner, viewer):
        response = as_owner.post(f"{TEAM}members/{viewer.pk}/role/", {"role": "boss"})
        assert response.status_code == 400 and "Choose a role: owner, engineer, viewer." in text(response)

    def test_the_last_owner_cannot_step_down_and_is_told_on_their_row(self, as_owner, team, owner):
        response = as_owner.post(f"{TEAM}members/{owner.pk}/role/", {"role": "viewer"})
        assert response.status_code == 400
        page = text(response)
        assert re.search(rf'id="member-{owner.pk}" class="has-error".*olivia-owner is the last owner', page, re.S)
        assert Membership.objects.get(team=team, user=owner).role == Role.OWNER

    def test_the_last_owner_cannot_be_removed(self, as_owner, team, owner):
        response = as_owner.post(f"{TEAM}members/{owner.pk}/remove/")
        assert response.status_code == 400 and "make someone else an owner first" in text(response)
        assert Membership.objects.filter(team=team, user=owner).exists()
        assert not AuditEvent.objects.filter(action="team.member.remove").exists()

    def test_an_owner_removes_a_member_and_their_tokens_stop(self, as_owner, team, engineer, token_for, client):
        _, secret = token_for(engineer, team, "write")
        response = as_owner.post(f"{TEAM}members/{engineer.pk}/remove/")
        assert response.status_code == 302 and response["Location"] == TEAM
        assert not Membership.objects.filter(team=team, user=engineer).exists()
        api = client.get("/api/v1/accounts/me", HTTP_AUTHORIZATION=f"Bearer {secret}")
        assert api.status_code == 401 and api.json()["reason"] == "revoked"
        assert AuditEvent.objects.filter(action="team.member.remove").count() == 1

    def test_an_owner_who_leaves_goes_back_to_the_team_list(self, as_owner, team, owner, engineer):
        as_owner.post(f"{TEAM}members/{engineer.pk}/role/", {"role": "owner"})
        response = as_owner.post(f"{TEAM}members/{owner.pk}/remove/")
        assert response["Location"] == "/accounts/teams/"

    def test_a_member_of_another_team_is_not_found(self, as_owner, outsider):
        assert as_owner.post(f"{TEAM}members/{outsider.pk}/remove/").status_code == 404


# --- tokens ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestTokens:
    def test_a_new_token_is_shown_once_and_works(self, client_for, engineer, team, client):
        response = client_for(engineer).post(f"{TEAM}tokens/new/", {"name": "ci", "scope": "write", "days": "30"})
        assert response.status_code == 200
        assert "no-store" in response["Cache-Control"]
        secret = re.search(r'data-testid="token-secret">([^<]+)<', text(response)).group(1)
        token = ApiToken.objects.get(key_hash=hash_token(secret))
        assert (token.user, token.scope) == (engineer, "write")
        assert secret not in text(client_for(engineer).get(TEAM))  # never again
        assert client.get("/api/v1/accounts/me", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200

    @pytest.mark.parametrize(("person", "data", "message"), [
        ("engineer", {"name": "", "scope": "read", "days": "30"}, "This field is required"),
        ("engineer", {"name": "ci", "scope": "root", "days": "30"}, "Select a valid choice"),
        ("engineer", {"name": "ci", "scope": "read", "days": "0"}, "greater than or equal to 1"),
        ("engineer", {"name": "ci", "scope": "read", "days": "999"}, "less than or equal to 365"),
        ("engineer", {"name": "ci", "scope": "read", "days": "soon"}, "Enter a whole number"),
        ("viewer", {"name": "ci", "scope": "write", "days": "30"}, "can create read tokens only"),
    ])
    def test_token_mistakes_are_shown_on_the_form_and_create_nothing(self, request, client_for, person, data,
                                                                     message):
        response = client_for(request.getfixturevalue(person)).post(f"{TEAM}tokens/new/", data)
        assert response.status_code == 400 and message in text(response)
        assert not ApiToken.objects.exists() and not AuditEvent.objects.filter(action="api_token.create").exists()

    def test_the_owner_of_a_token_revokes_it(self, client_for, engineer, team, token_for):
        token, _ = token_for(engineer, team)
        response = client_for(engineer).post(f"{TEAM}tokens/{token.pk}/revoke/")
        assert response.status_code == 302 and response["Location"] == f"{TEAM}#tokens"
        token.refresh_from_db()
        assert token.revoked_at is not None
        assert AuditEvent.objects.get(action="api_token.revoke").actor_label == "evan-engineer"

    def test_revoking_twice_says_so_and_records_once(self, client_for, engineer, team, token_for):
        token, _ = token_for(engineer, team)
        client = client_for(engineer)
        client.post(f"{TEAM}tokens/{token.pk}/revoke/")
        response = client.post(f"{TEAM}tokens/{token.pk}/revoke/")
        assert any("already revoked" in m for m in flash(response))
        assert AuditEvent.objects.filter(action="api_token.revoke").count() == 1

    def test_another_members_token_cannot_be_revoked_by_an_engineer(self, client_for, engineer, owner, team,
                                                                    token_for):
        token, _ = token_for(owner, team)
        response = client_for(engineer).post(f"{TEAM}tokens/{token.pk}/revoke/")
        assert response.status_code == 403 and "Only the token&#x27;s owner" in text(response)
        token.refresh_from_db()
        assert token.revoked_at is None

    def test_a_token_of_another_team_is_not_found_here(self, client_for, owner, outsider, other_team, token_for):
        token, _ = token_for(outsider, other_team)
        assert client_for(owner).post(f"{TEAM}tokens/{token.pk}/revoke/").status_code == 404


@pytest.mark.django_db
def test_no_page_accepts_a_get_for_a_change(client_for, owner, viewer):
    client = client_for(owner)
    for url in (f"{TEAM}members/", f"{TEAM}members/{viewer.pk}/remove/", f"{TEAM}tokens/new/",
                "/accounts/teams/new/"):
        assert client.get(url).status_code == 405, url
    assert Membership.objects.filter(user=viewer).exists()

