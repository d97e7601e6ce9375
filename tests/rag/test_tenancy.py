"""Tenant isolation: a user or token of another team sees no collection (404) and retrieves nothing, and the
filter is applied in SQL (even a direct leg query with the collection's id comes back empty)."""

import pytest

from apps.rag import retrieval
from apps.rag.config import RetrievalConfig
from apps.rag.services import collection_share
from tests.rag.conftest import add_text

pytestmark = pytest.mark.django_db

SECRET = "The merger with Initech closes on 3 March; the price is 40 euros per share."


@pytest.fixture
def secret_collection(collection):
    add_text(collection, "merger.txt", SECRET)
    return collection


def _search(actor, collection, mode):
    return retrieval.retrieve(collection=collection, query="merger Initech price", actor=actor,
                              config=RetrievalConfig(mode=mode, k=5)).hits


@pytest.mark.parametrize("mode", ["bm25", "vector", "hybrid"])
def test_members_retrieve_and_other_teams_retrieve_nothing_in_sql(secret_collection, owner, viewer, outsider,
                                                                   nobody, mode):
    assert [h.source_name for h in _search(owner, secret_collection, mode)] == ["merger.txt"]
    assert [h.source_name for h in _search(viewer, secret_collection, mode)] == ["merger.txt"]
    assert _search(outsider, secret_collection, mode) == []
    assert _search(nobody, secret_collection, mode) == []


def test_council_and_admin_may_read(secret_collection, council_member, admin_user):
    assert _search(council_member, secret_collection, "bm25")
    assert _search(admin_user, secret_collection, "hybrid")


def test_a_guardian_grant_shares_one_collection_with_one_outsider(secret_collection, outsider, owner):
    assert _search(outsider, secret_collection, "bm25") == []
    collection_share(collection=secret_collection, grantee=outsider, action="view", user=owner)
    from django.contrib.auth import get_user_model

    fresh = get_user_model().objects.get(pk=outsider.pk)  # guardian caches permissions per user object
    assert [h.source_name for h in _search(fresh, secret_collection, "bm25")] == ["merger.txt"]


def test_pages_answer_404_to_another_team_and_403_to_a_viewer_who_writes(secret_collection, client_for, outsider,
                                                                         viewer, owner):
    pk = secret_collection.pk
    other = client_for(outsider)
    for url in (f"/rag/{pk}/", f"/rag/{pk}/playground/?q=merger", f"/rag/{pk}/evals/", f"/rag/{pk}/progress/"):
        assert other.get(url).status_code == 404, url
    assert other.post(f"/rag/{pk}/answer/", {"q": "merger"}).status_code == 404
    assert "merger.txt" not in other.get("/rag/").content.decode()
    reader = client_for(viewer)
    assert reader.get(f"/rag/{pk}/").status_code == 200
    assert reader.post(f"/rag/{pk}/upload/", {}).status_code == 403
    assert reader.post(f"/rag/{pk}/delete/").status_code == 403
    assert client_for(None).get(f"/rag/{pk}/").status_code == 302  # to the login page


def test_the_api_with_another_teams_token_gets_404_and_nothing(secret_collection, client, outsider, other_team,
                                                               owner, team, token_for):
    _, other_secret = token_for(outsider, other_team, scope="read")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {other_secret}"}
    pk = secret_collection.pk
    assert client.get("/api/v1/rag/collections", **headers).json() == []
    assert client.get(f"/api/v1/rag/collections/{pk}", **headers).status_code == 404
    response = client.post(f"/api/v1/rag/collections/{pk}/search", {"query": "merger Initech"},
                           content_type="application/json", **headers)
    assert response.status_code == 404
    assert "Initech" not in response.content.decode()
    _, own_secret = token_for(owner, team, scope="read")
    mine = client.post(f"/api/v1/rag/collections/{pk}/search", {"query": "merger Initech", "config": {"k": 3}},
                       content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {own_secret}")
    assert mine.status_code == 200
    hit = mine.json()["hits"][0]
    assert hit["source_name"] == "merger.txt" and hit["bm25_rank"] == 1 and hit["vector_rank"] == 1


def test_a_read_token_cannot_upload(secret_collection, client, owner, team, token_for):
    _, secret = token_for(owner, team, scope="read")
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post(f"/api/v1/rag/collections/{secret_collection.pk}/documents",
                           {"file": SimpleUploadedFile("a.txt", b"hello")}, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 403


def test_the_search_lookup_finds_the_collection_for_whoever_may_see_it_and_404s_for_others(
        secret_collection, owner, viewer, council_member, outsider, nobody):
    from django.http import Http404

    from apps.rag.selectors import collection_get_for_search

    for actor in (owner, viewer, council_member):
        assert collection_get_for_search(actor=actor, pk=secret_collection.pk) == secret_collection
    for actor in (outsider, nobody):
        with pytest.raises(Http404):
            collection_get_for_search(actor=actor, pk=secret_collection.pk)
    with pytest.raises(Http404):
        collection_get_for_search(actor=owner, pk=secret_collection.pk + 10_000)


def test_a_removed_membership_acts_on_the_next_search_though_the_compiled_condition_is_kept(
        secret_collection, client, viewer, team, token_for):
    from django.contrib.auth import get_user_model

    from apps.accounts.models import Membership

    _, secret = token_for(viewer, team, scope="read")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    url = f"/api/v1/rag/collections/{secret_collection.pk}/search"
    assert _search(viewer, secret_collection, "hybrid")  # compiles and keeps the viewer's condition
    assert client.post(url, {"query": "merger Initech"}, content_type="application/json", **headers).json()["hits"]

    Membership.objects.filter(user=viewer, team=team).delete()

    assert _search(get_user_model().objects.get(pk=viewer.pk), secret_collection, "hybrid") == []
    response = client.post(url, {"query": "merger Initech"}, content_type="application/json", **headers)
    assert response.status_code in (401, 404) and "Initech" not in response.content.decode()
