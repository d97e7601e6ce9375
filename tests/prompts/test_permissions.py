"""The permission matrix: anonymous, no access, viewer, engineer of another team, engineer, owner, council seat,
admin and API tokens, on every page and endpoint of the prompt catalog."""

import pytest
from django.test import Client
from django.urls import reverse

from apps.prompts.models import Label, PromotionRequest
from apps.prompts.services import promotion_request_open

PEOPLE = ["anonymous", "nobody", "viewer", "outsider", "engineer", "owner", "council_member", "admin_user"]


@pytest.fixture
def world(make_prompt, engineer, engineer2):
    prompt = make_prompt()
    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer2)
    return {"prompt": prompt, "request": request}


def _client(request, who):
    if who == "anonymous":
        return Client()
    client = Client()
    client.force_login(request.getfixturevalue(who))
    return client


def _expect(who, allowed, *, unseen=404):
    """The status a person gets: 302 to login when anonymous, 404 if they cannot see the prompt at all."""
    if who == "anonymous":
        return 302
    if who in ("nobody", "outsider"):
        return unseen
    return 200 if who in allowed else 403


READERS = {"viewer", "engineer", "owner", "council_member", "admin_user"}
WRITERS = {"engineer", "owner", "admin_user"}
MANAGERS = {"owner", "admin_user"}

NAME = "support/triage-summary"
PAGES = [
    ("prompts:detail", [NAME], READERS),
    ("prompts:version", [NAME, 1], READERS),
    ("prompts:diff", [NAME], READERS),
    ("prompts:playground", [NAME, 1], READERS),
    ("prompts:version_create", [NAME], WRITERS),
    ("prompts:promote", [NAME], WRITERS),
    ("prompts:edit", [NAME], WRITERS),
    ("prompts:team_settings", ["support-ai"], READERS),
    ("prompts:team_export", ["support-ai"], READERS),
]


@pytest.mark.parametrize("who", PEOPLE)
@pytest.mark.parametrize("url_name,args,allowed", PAGES, ids=[p[0] for p in PAGES])
def test_prompt_pages(request, world, who, url_name, args, allowed):
    response = _client(request, who).get(reverse(url_name, args=args))
    assert response.status_code == _expect(who, allowed), response.content[:300]


@pytest.mark.parametrize("who", PEOPLE)
def test_the_request_page(request, world, who):
    response = _client(request, who).get(reverse("prompts:request", args=[world["request"].pk]))
    assert response.status_code == _expect(who, READERS)


@pytest.mark.parametrize("who", PEOPLE)
def test_the_catalog_and_the_request_list_are_open_to_every_logged_in_person_but_filtered(request, world, who):
    client = _client(request, who)
    for url in (reverse("prompts:list"), reverse("prompts:requests")):
        response = client.get(url)
        assert response.status_code == (302 if who == "anonymous" else 200)
    if who != "anonymous":
        names = [p.name for p in client.get(reverse("prompts:list")).context["page"].object_list]
        assert names == ([NAME] if who in READERS else [])


@pytest.mark.parametrize("who,status", [("anonymous", 302), ("nobody", 403), ("viewer", 403), ("council_member", 403),
                                        ("outsider", 200), ("engineer", 200), ("admin_user", 200)])
def test_who_may_open_the_new_prompt_page(request, db, team, who, status):
    assert _client(request, who).get(reverse("prompts:create")).status_code == status


@pytest.mark.parametrize("who", PEOPLE)
def test_who_may_approve(request, world, who):
    client = _client(request, who)
    client.post(reverse("prompts:request_approve", args=[world["request"].pk]))
    applied = PromotionRequest.objects.get(pk=world["request"].pk).status == "applied"
    # engineer2 opened it, engineer wrote the version: only the owner is an eligible approver here.
    assert applied == (who == "owner")


@pytest.mark.parametrize("who,moves", [("viewer", False), ("council_member", False), ("outsider", False),
                                       ("engineer", True), ("owner", True), ("admin_user", True)])
def test_who_may_move_staging(request, world, who, moves):
    _client(request, who).post(reverse("prompts:label_set", args=[NAME]), {"label": "staging", "version": 1})
    assert Label.objects.filter(prompt=world["prompt"], name="staging").exists() == moves


@pytest.mark.parametrize("who,status", [("viewer", 403), ("engineer", 403), ("council_member", 403),
                                        ("outsider", 404), ("owner", 302), ("admin_user", 302)])
def test_only_owners_manage_policy_and_webhooks(request, world, who, status):
    client = _client(request, who)
    assert client.post(reverse("prompts:policy_update", args=["support-ai"]),
                       {"approvals_required": 1}).status_code == status
    hook = client.post(reverse("prompts:webhook_create", args=["support-ai"]),
                       {"url": "https://x.example.com/h", "events": ["label.moved"]})
    assert hook.status_code == (200 if status == 302 else status)


@pytest.mark.parametrize("who,status", [("viewer", 403), ("council_member", 403), ("outsider", 404),
                                        ("engineer", 200), ("admin_user", 200)])
def test_who_may_run_the_playground(request, world, who, status):
    response = _client(request, who).post(reverse("prompts:playground", args=[NAME, 1]), {"models": ["nope"]})
    assert response.status_code == (422 if status == 200 else status)  # 422: the model is not in the catalog


# --- the API ---------------------------------------------------------------------------------------------

BASE = "/api/v1/prompts"


@pytest.mark.parametrize("who,status", [("nobody", 404), ("viewer", 200), ("outsider", 404), ("engineer", 200),
                                        ("council_member", 200), ("admin_user", 200)])
def test_api_reads_by_session(request, world, who, status):
    client = _client(request, who)
    assert client.get(f"{BASE}/{NAME}/versions").status_code == status
    assert client.get(f"{BASE}/{NAME}/resolve?label=latest").status_code == status


@pytest.mark.parametrize("who,status", [("viewer", 403), ("outsider", 404), ("council_member", 403),
                                        ("engineer", 201), ("owner", 201), ("admin_user", 201)])
def test_api_writes_by_session(request, world, who, status):
    response = _client(request, who).post(f"{BASE}/{NAME}/versions", {"template": f"By {who} {{{{ ticket }}}}"},
                                          content_type="application/json")
    assert response.status_code == status


@pytest.mark.parametrize("scope,own_team,read,write", [
    ("read", True, 200, 403), ("write", True, 200, 201), ("ingest", True, 404, 404),
    ("write", False, 404, 404), ("read", False, 404, 404),
])
def test_api_tokens(world, token_for, engineer, outsider, team, other_team, scope, own_team, read, write):
    user, token_team = (engineer, team) if own_team else (outsider, other_team)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token_for(user, token_team, scope)[1]}")
    assert client.get(f"{BASE}/{NAME}/resolve?label=latest").status_code == read
    response = client.post(f"{BASE}/{NAME}/versions", {"template": "Token {{ ticket }}"},
                           content_type="application/json")
    assert response.status_code == write
    opened = client.post(f"{BASE}/{NAME}/promotions", {"version": 1, "label": "staging"},
                         content_type="application/json")
    assert opened.status_code in (403, 404, 422)


@pytest.mark.parametrize("scope", ["read", "write"])
def test_no_token_moves_production_or_approves(world, token_for, owner, team, scope):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token_for(owner, team, scope)[1]}")
    put = client.put(f"{BASE}/{NAME}/labels/production", {"version": 1}, content_type="application/json")
    assert put.status_code == 403
    approve = client.post(f"{BASE}/-/promotion-requests/{world['request'].pk}/approve")
    assert approve.status_code == 403
    assert not Label.objects.filter(prompt=world["prompt"], name="production").exists()


def test_api_import_export_permissions(world, token_for, engineer, viewer, team):
    reader = Client(HTTP_AUTHORIZATION=f"Bearer {token_for(viewer, team, 'read')[1]}")
    exported = reader.get(f"{BASE}/-/export?team=support-ai")
    assert exported.status_code == 200
    refused = reader.post(f"{BASE}/-/import?team=support-ai", exported.content, content_type="application/yaml")
    assert refused.status_code == 403
    writer = Client(HTTP_AUTHORIZATION=f"Bearer {token_for(engineer, team, 'write')[1]}")
    assert writer.post(f"{BASE}/-/import?team=support-ai", exported.content,
                       content_type="application/yaml").status_code == 200
