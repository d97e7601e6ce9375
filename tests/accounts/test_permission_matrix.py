"""The permission matrix: who may do what, read as a table.

People (tests/conftest.py): anonymous; nobody (logged in, no team); viewer, engineer, owner of Support AI;
outsider (engineer of Search); council (security seat); admin (staff). Tokens belong to the engineer of
Support AI (read / write / ingest) or to the outsider (Search, read).

Outcomes: a status code, LOGIN (302 to the login page), or DONE (the change happened, 302 back to the page).
Web pages do not accept bearer tokens, so a token there is anonymous. Unseen teams are 404, not 403, so a
page never confirms that a team exists to someone outside it.
"""

from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.accounts.models import ApiToken, Membership, Role
from apps.audit.models import AuditEvent
from apps.audit.services import audit_record

LOGIN = "login"
DONE = "done"

PEOPLE = ["anonymous", "nobody", "viewer", "outsider", "engineer", "owner", "council", "admin",
          "token_read", "token_write", "token_ingest", "token_other_team"]

# --- the spec ----------------------------------------------------------------------------------------------

TEAM_PAGE = {  # GET /accounts/teams/support-ai/
    "anonymous": LOGIN, "nobody": 404, "viewer": 200, "outsider": 404, "engineer": 200, "owner": 200,
    "council": 200, "admin": 200,
    "token_read": LOGIN, "token_write": LOGIN, "token_ingest": LOGIN, "token_other_team": LOGIN,
}

TOKEN_CREATE = {  # POST /accounts/teams/support-ai/tokens/new/ (a read token for oneself): members only
    "anonymous": LOGIN, "nobody": 404, "viewer": 200, "outsider": 404, "engineer": 200, "owner": 200,
    "council": 403, "admin": 403,
    "token_read": LOGIN, "token_write": LOGIN, "token_ingest": LOGIN, "token_other_team": LOGIN,
}

TOKEN_REVOKE = {  # POST …/tokens/<the engineer's token>/revoke/: its owner, a team owner or an admin
    "anonymous": LOGIN, "nobody": 404, "viewer": 403, "outsider": 404, "engineer": DONE, "owner": DONE,
    "council": 403, "admin": DONE,
    "token_read": LOGIN, "token_write": LOGIN, "token_ingest": LOGIN, "token_other_team": LOGIN,
}

MEMBER_MANAGEMENT = {  # POST add / change role / remove: team owners and admins
    "anonymous": LOGIN, "nobody": 404, "viewer": 403, "outsider": 404, "engineer": 403, "owner": DONE,
    "council": 403, "admin": DONE,
    "token_read": LOGIN, "token_write": LOGIN, "token_ingest": LOGIN, "token_other_team": LOGIN,
}

# Which marked events each person sees: "team" (Support AI), "other" (Search), "own" (nobody's own, no team).
ALL = {"team", "other", "own"}
AUDIT_PAGE = {  # GET /audit/ and GET /audit/export.jsonl
    "anonymous": LOGIN, "nobody": (200, {"own"}), "viewer": (200, {"team"}), "outsider": (200, {"other"}),
    "engineer": (200, {"team"}), "owner": (200, {"team"}), "council": (200, ALL), "admin": (200, ALL),
    "token_read": LOGIN, "token_write": LOGIN, "token_ingest": LOGIN, "token_other_team": LOGIN,
}

API_AUDIT_EVENTS = {  # GET /api/v1/audit/events
    "anonymous": 401, "nobody": (200, {"own"}), "viewer": (200, {"team"}), "outsider": (200, {"other"}),
    "engineer": (200, {"team"}), "owner": (200, {"team"}), "council": (200, ALL), "admin": (200, ALL),
    "token_read": (200, {"team"}), "token_write": (200, {"team"}), "token_ingest": 403,
    "token_other_team": (200, {"other"}),
}

API_ME = {  # GET /api/v1/accounts/me: any valid credential; (status, username, token's team)
    "anonymous": 401, "nobody": (200, "nina-nobody", None), "viewer": (200, "pat-pm", None),
    "outsider": (200, "oscar-other", None), "engineer": (200, "evan-engineer", None),
    "owner": (200, "olivia-owner", None), "council": (200, "sam-security", None),
    "admin": (200, "ada-admin", None),
    "token_read": (200, "evan-engineer", "support-ai"), "token_write": (200, "evan-engineer", "support-ai"),
    "token_ingest": (200, "evan-engineer", "support-ai"), "token_other_team": (200, "oscar-other", "search"),
}


def test_every_table_names_every_person():
    for table in (TEAM_PAGE, TOKEN_CREATE, TOKEN_REVOKE, MEMBER_MANAGEMENT, AUDIT_PAGE, API_AUDIT_EVENTS, API_ME):
        assert list(table) == PEOPLE


# --- the people --------------------------------------------------------------------------------------------


@pytest.fixture
def world(team, other_team, owner, engineer, viewer, outsider, nobody, council_member, admin_user, token_for):
    tokens = {
        "token_read": token_for(engineer, team, "read"),
        "token_write": token_for(engineer, team, "write"),
        "token_ingest": token_for(engineer, team, "ingest"),
        "token_other_team": token_for(outsider, other_team, "read"),
    }
    users = {"nobody": nobody, "viewer": viewer, "outsider": outsider, "engineer": engineer, "owner": owner,
             "council": council_member, "admin": admin_user}
    audit_record(action="test.marker", team=team, object_repr="marker-team", user=owner)
    audit_record(action="test.marker", team=other_team, object_repr="marker-other", user=outsider)
    audit_record(action="test.marker", object_repr="marker-own", user=nobody)
    return SimpleNamespace(team=team, other_team=other_team, users=users, tokens=tokens)


@pytest.fixture
def as_person(world):
    """as_person(name) -> (client, extra request kwargs)."""

    def make(name):
        client = Client()
        if name in world.users:
            client.force_login(world.users[name])
            return client, {}
        if name in world.tokens:
            return client, {"HTTP_AUTHORIZATION": f"Bearer {world.tokens[name][1]}"}
        assert name == "anonymous"
        return client, {}

    return make


def outcome(response, done_url_part="/accounts/teams/"):
    if response.status_code == 302:
        location = response["Location"]
        if location.startswith("/accounts/login/"):
            return LOGIN
        assert done_url_part in location, location
        return DONE
    return response.status_code


def visible_markers(text: str) -> set[str]:
    return {name for name in ALL if f"marker-{name}" in text}


# --- the checks --------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("person", PEOPLE)
def test_team_page(person, as_person):
    client, extra = as_person(person)
    response = client.get("/accounts/teams/support-ai/", **extra)
    assert outcome(response) == TEAM_PAGE[person]
    if response.status_code == 200:
        assert "olivia-owner" in response.content.decode()  # the member list is on the page


@pytest.mark.django_db
@pytest.mark.parametrize("person", PEOPLE)
def test_token_create(person, as_person, world):
    client, extra = as_person(person)
    before = ApiToken.objects.count()
    response = client.post("/accounts/teams/support-ai/tokens/new/",
                           {"name": "matrix", "scope": "read", "days": "30"}, **extra)
    assert outcome(response) == TOKEN_CREATE[person]
    created = ApiToken.objects.filter(name="matrix")
    if TOKEN_CREATE[person] == 200:
        assert created.get().user == world.users[person]
        assert created.get().key_hash not in response.content.decode()
    else:
        assert ApiToken.objects.count() == before


@pytest.mark.django_db
@pytest.mark.parametrize("person", PEOPLE)
def test_token_revoke(person, as_person, world, engineer, team, token_for):
    target, _ = token_for(engineer, team, "read")
    client, extra = as_person(person)
    response = client.post(f"/accounts/teams/support-ai/tokens/{target.pk}/revoke/", **extra)
    assert outcome(response) == TOKEN_REVOKE[person]
    target.refresh_from_db()
    assert (target.revoked_at is not None) == (TOKEN_REVOKE[person] == DONE)


MEMBER_OPERATIONS = {
    "add": lambda w: ("/accounts/teams/support-ai/members/", {"username": "newbie", "role": "viewer"}),
    "change": lambda w: (f"/accounts/teams/support-ai/members/{w.users['viewer'].pk}/role/", {"role": "engineer"}),
    "remove": lambda w: (f"/accounts/teams/support-ai/members/{w.users['viewer'].pk}/remove/", {}),
}


def _member_state(world):
    return sorted(Membership.objects.filter(team=world.team).values_list("user__username", "role"))


@pytest.mark.django_db
@pytest.mark.parametrize("operation", list(MEMBER_OPERATIONS))
@pytest.mark.parametrize("person", PEOPLE)
def test_member_management(person, operation, as_person, world):
    get_user_model().objects.create_user(username="newbie", password="x" * 12)
    url, data = MEMBER_OPERATIONS[operation](world)
    before = _member_state(world)
    client, extra = as_person(person)
    response = client.post(url, data, **extra)
    assert outcome(response) == MEMBER_MANAGEMENT[person]
    changed = _member_state(world) != before
    assert changed == (MEMBER_MANAGEMENT[person] == DONE)
    if changed and operation == "add":
        assert Membership.objects.get(team=world.team, user__username="newbie").role == Role.VIEWER


AUDIT_READS = {  # the log page and its export show the same events to the same people
    "/audit/": lambda response: response.content.decode(),
    "/audit/export.jsonl": lambda response: b"".join(response.streaming_content).decode(),
}


@pytest.mark.django_db
@pytest.mark.parametrize("url", AUDIT_READS)
@pytest.mark.parametrize("person", PEOPLE)
def test_audit_page_and_export(person, url, as_person):
    client, extra = as_person(person)
    response = client.get(url, **extra)
    expected = AUDIT_PAGE[person]
    if expected == LOGIN:
        assert outcome(response) == LOGIN
        return
    status, markers = expected
    assert response.status_code == status
    assert visible_markers(AUDIT_READS[url](response)) == markers


@pytest.mark.django_db
@pytest.mark.parametrize("person", PEOPLE)
def test_api_me(person, as_person):
    client, extra = as_person(person)
    response = client.get("/api/v1/accounts/me", **extra)
    expected = API_ME[person]
    if expected == 401:
        assert response.status_code == 401
        assert response.json()["reason"] == "missing"
        return
    status, username, token_team = expected
    assert response.status_code == status
    body = response.json()
    assert (body["username"], body["token_team"]) == (username, token_team)
    if token_team:
        assert body["is_admin"] is False and body["council_seats"] == []
        assert [t["slug"] for t in body["teams"]] == [token_team]


@pytest.mark.django_db
@pytest.mark.parametrize("person", PEOPLE)
def test_api_audit_events(person, as_person):
    client, extra = as_person(person)
    response = client.get("/api/v1/audit/events", **extra)
    expected = API_AUDIT_EVENTS[person]
    if not isinstance(expected, tuple):
        assert response.status_code == expected
        assert response.json()["detail"]
        return
    status, markers = expected
    assert response.status_code == status
    assert {e["object_repr"].removeprefix("marker-") for e in response.json()
            if e["object_repr"].startswith("marker-")} == markers


@pytest.mark.django_db
def test_denied_requests_leave_no_audit_event(as_person, world):
    """Refusals change nothing, so they record nothing."""
    before = AuditEvent.objects.count()
    for person in ("nobody", "viewer", "outsider", "engineer", "council"):
        client, extra = as_person(person)
        client.post("/accounts/teams/support-ai/members/", {"username": "pat-pm", "role": "owner"}, **extra)
    assert AuditEvent.objects.count() == before
