"""The REST API: create a collection, upload, follow the job, search, eval runs; token scopes and teams."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.rag.models import Collection, IndexingJob
from tests.rag.conftest import run_jobs

pytestmark = pytest.mark.django_db


def _auth(secret):
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def test_a_write_token_creates_uploads_and_searches(client, engineer, team, token_for, local_models):
    _, secret = token_for(engineer, team, scope="write")
    response = client.post("/api/v1/rag/collections", {"team": team.slug, "name": "API docs",
                                                       "chunking": {"strategy": "recursive", "chunk_tokens": 100}},
                           content_type="application/json", **_auth(secret))
    assert response.status_code == 201, response.content
    cid = response.json()["id"]
    response = client.post(f"/api/v1/rag/collections/{cid}/documents",
                           {"file": SimpleUploadedFile("faq.md", b"# FAQ\n\nThe office opens at nine.")},
                           **_auth(secret))
    assert response.status_code == 201 and response.json()["created"] == ["faq.md"]
    job_id = response.json()["job"]
    run_jobs(Collection.objects.get(pk=cid))
    job = client.get(f"/api/v1/rag/collections/{cid}/jobs/{job_id}", **_auth(secret)).json()
    assert job["status"] == "succeeded" and job["progress_done"] == 1
    again = client.post(f"/api/v1/rag/collections/{cid}/documents",
                        {"file": SimpleUploadedFile("faq.md", b"# FAQ\n\nThe office opens at nine.")}, **_auth(secret))
    assert again.json()["unchanged"] == ["faq.md"] and again.json()["job"] is None
    docs = client.get(f"/api/v1/rag/collections/{cid}/documents", **_auth(secret)).json()
    assert docs[0]["status"] == "indexed" and docs[0]["version"] == 1
    hits = client.post(f"/api/v1/rag/collections/{cid}/search", {"query": "when does the office open",
                                                                 "config": {"mode": "bm25"}},
                       content_type="application/json", **_auth(secret)).json()["hits"]
    assert hits[0]["heading_path"] == "FAQ" and hits[0]["vector_rank"] is None


def test_bad_input_is_a_422_naming_the_field(client, engineer, team, token_for, collection):
    _, secret = token_for(engineer, team, scope="write")
    response = client.post(f"/api/v1/rag/collections/{collection.pk}/search", {"query": "x", "config": {"k": 0}},
                           content_type="application/json", **_auth(secret))
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "k"
    response = client.post(f"/api/v1/rag/collections/{collection.pk}/documents",
                           {"file": SimpleUploadedFile("x.exe", b"MZ")}, **_auth(secret))
    assert response.status_code == 422 and "reads .txt" in response.json()["errors"][0]["message"]
    assert not IndexingJob.objects.exists()


def test_a_token_cannot_create_in_another_team(client, engineer, team, other_team, token_for, local_models):
    _, secret = token_for(engineer, team, scope="write")
    response = client.post("/api/v1/rag/collections", {"team": other_team.slug, "name": "x"},
                           content_type="application/json", **_auth(secret))
    assert response.status_code == 403


def test_a_token_whose_scope_cannot_read_gets_404_from_search_not_an_error(client, engineer, team, token_for,
                                                                           collection):
    _, secret = token_for(engineer, team, scope="ingest")  # ingest tokens may not read collections

    response = client.post(f"/api/v1/rag/collections/{collection.pk}/search", {"query": "anything"},
                           content_type="application/json", **_auth(secret))

    assert response.status_code == 404 and response.json()["detail"]
