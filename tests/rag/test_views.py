"""Pages: collections, uploads with their errors next to the field, live progress, the document view at a chunk,
the playground (per-leg explanations, two configurations), answers with citations and groundedness."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.audit.models import AuditEvent
from apps.rag.models import Collection, Document, DocumentStatus, IndexingJob
from tests.rag.conftest import add_text, run_jobs

pytestmark = pytest.mark.django_db

HANDBOOK = """# Travel policy

## Booking

Book flights through the travel desk at least 14 days ahead. Economy class is the default.

## Expenses

Hotel costs are reimbursed up to 150 euros per night. Receipts are required for every expense.

| Item | Limit |
|---|---|
| Hotel | 150 euros |
| Meals | 40 euros |
"""


def test_list_shows_only_visible_collections_and_the_create_button(collection, make_collection, other_team,
                                                                   client_for, engineer, viewer):
    make_collection("Search docs", team=other_team)
    page = client_for(engineer).get("/rag/").content.decode()
    assert "Handbook" in page and "Search docs" not in page and "New collection" in page
    assert "New collection" not in client_for(viewer).get("/rag/").content.decode()


def test_create_a_collection_and_see_errors_next_to_fields(client_for, engineer, team, local_models):
    c = client_for(engineer)
    response = c.post("/rag/new/", {"team": team.pk, "name": "", "data_class": "internal",
                                    "embedding_model": local_models["embedding"].pk, "chunking_strategy": "recursive",
                                    "chunking_chunk_tokens": 5, "chunking_overlap_tokens": 0})
    assert response.status_code == 400
    body = response.content.decode()
    assert "This field is required" in body
    response = c.post("/rag/new/", {"team": team.pk, "name": "Policies", "data_class": "confidential",
                                    "embedding_model": local_models["embedding"].pk, "chunking_strategy": "recursive",
                                    "chunking_chunk_tokens": 5, "chunking_overlap_tokens": 0})
    assert response.status_code == 400
    assert "Chunks hold from 20 to 4,000 tokens." in response.content.decode()
    response = c.post("/rag/new/", {"team": team.pk, "name": "Policies", "data_class": "confidential",
                                    "embedding_model": local_models["embedding"].pk, "chunking_strategy": "recursive",
                                    "chunking_chunk_tokens": 200, "chunking_overlap_tokens": 0})
    created = Collection.objects.get(name="Policies")
    assert response.status_code == 302 and response["Location"] == f"/rag/{created.pk}/"
    assert AuditEvent.objects.filter(action="rag.collection.create").exists()


def test_upload_queues_a_job_and_the_page_polls_until_it_is_done(collection, client_for, engineer):
    c = client_for(engineer)
    response = c.post(f"/rag/{collection.pk}/upload/",
                      {"file": [SimpleUploadedFile("travel.md", HANDBOOK.encode()),
                                SimpleUploadedFile("notes.txt", b"Short note about trains.")]})
    assert response.status_code == 302
    assert Document.objects.filter(collection=collection, status=DocumentStatus.QUEUED).count() == 2
    page = c.get(f"/rag/{collection.pk}/").content.decode()
    assert 'hx-trigger="every 1s"' in page and "waiting for a worker" in page
    fragment = c.get(f"/rag/{collection.pk}/progress/?was_active=1", HTTP_HX_REQUEST="true")
    assert 'hx-trigger="every 1s"' in fragment.content.decode()
    run_jobs(collection)
    fragment = c.get(f"/rag/{collection.pk}/progress/?was_active=1", HTTP_HX_REQUEST="true")
    body = fragment.content.decode()
    assert "every 1s" not in body and "2 indexed" in body
    assert fragment["HX-Trigger"] == "rag-indexed"
    table = c.get(f"/rag/{collection.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in table and table.count('data-status="indexed"') == 2


def test_unsupported_and_oversized_files_get_a_message_next_to_the_field_and_change_nothing(
        collection, client_for, engineer, settings):
    c = client_for(engineer)
    response = c.post(f"/rag/{collection.pk}/upload/",
                      {"file": [SimpleUploadedFile("ok.txt", b"fine"), SimpleUploadedFile("data.xlsx", b"x")]})
    assert response.status_code == 400
    assert "data.xlsx: the portal reads .txt, .md, .html and .pdf files" in response.content.decode()
    settings.RAG_MAX_DOCUMENT_BYTES = 1000
    response = c.post(f"/rag/{collection.pk}/upload/", {"file": SimpleUploadedFile("big.txt", b"x" * 2000)})
    assert response.status_code == 400
    assert "big.txt is 2.0 KB; the limit is 1000 bytes per document." in response.content.decode()
    assert not Document.objects.exists()


def test_a_broken_pdf_shows_its_error_and_a_retry_button(collection, client_for, engineer):
    c = client_for(engineer)
    c.post(f"/rag/{collection.pk}/upload/", {"file": SimpleUploadedFile("scan.pdf", b"%PDF-1.7 broken")})
    run_jobs(collection)
    page = c.get(f"/rag/{collection.pk}/").content.decode()
    assert "This PDF could not be read" in page or "no text" in page
    doc = Document.objects.get()
    assert f"/rag/{collection.pk}/documents/{doc.pk}/retry/" in page
    response = c.post(f"/rag/{collection.pk}/documents/{doc.pk}/retry/")
    assert response.status_code == 302
    assert IndexingJob.objects.filter(trigger="retry").exists()


def test_jsonl_import_with_a_bad_line_names_it(collection, client_for, engineer):
    c = client_for(engineer)
    bad = b'{"_id": "1", "text": "fine"}\n{"_id": "2"}\n'
    response = c.post(f"/rag/{collection.pk}/import/", {"file": SimpleUploadedFile("corpus.jsonl", bad)})
    assert response.status_code == 400
    assert "Line 2: the document needs a non-empty" in response.content.decode()
    good = b'{"_id": "1", "title": "One", "text": "First document."}\n{"_id": "2", "text": "Second."}\n'
    response = c.post(f"/rag/{collection.pk}/import/", {"file": SimpleUploadedFile("corpus.jsonl", good)})
    assert response.status_code == 302
    assert Document.objects.filter(collection=collection).count() == 2


def test_document_page_opens_at_the_chunk(collection, client_for, viewer):
    add_text(collection, "travel.md", HANDBOOK)
    doc = Document.objects.get()
    chunk = doc.chunks.get(heading_path="Travel policy › Expenses")
    page = client_for(viewer).get(f"/rag/{collection.pk}/documents/{doc.pk}/?chunk={chunk.pk}").content.decode()
    assert f'id="chunk-{chunk.pk}" class="rag-chunk focus"' in page
    assert "| Hotel | 150 euros |" in page  # the table, whole, inside the chunk
    assert page.count('class="rag-chunk') == doc.chunk_count


def test_playground_explains_each_hit_and_compares_two_configurations(collection, client_for, viewer):
    add_text(collection, "travel.md", HANDBOOK)
    add_text(collection, "it.txt", "Laptops are replaced every three years. Ask the IT desk for a new laptop.")
    c = client_for(viewer)
    page = c.get(f"/rag/{collection.pk}/playground/", {"q": "hotel receipts limit", "compare": "1",
                                                       "a-mode": "hybrid", "a-k": 3, "a-candidates": 50,
                                                       "a-k1": 1.2, "a-b": 0.75, "a-ef_search": 40,
                                                       "a-fusion": "rrf", "a-rrf_k": 60, "a-bm25_weight": 1,
                                                       "a-vector_weight": 1, "a-alpha": 0.5, "a-mmr_lambda": 0.7,
                                                       "b-mode": "bm25", "b-k": 3, "b-candidates": 50, "b-k1": 0.9,
                                                       "b-b": 0.4, "b-ef_search": 40, "b-fusion": "convex",
                                                       "b-rrf_k": 60, "b-bm25_weight": 1, "b-vector_weight": 1,
                                                       "b-alpha": 0.5, "b-mmr_lambda": 0.7}).content.decode()
    assert 'data-config="A"' in page and 'data-config="B"' in page
    assert "Travel policy › Expenses" in page
    assert "<mark>Receipts</mark>" in page or "<mark>receipts</mark>" in page.lower()
    assert re.search(r"BM25</dt><dd>rank 1 · \d", page)
    assert "cos 0." in page
    assert "bm25" in page and "vector" in page and "total" in page  # latency per step


def test_playground_with_invalid_settings_says_which_field(collection, client_for, viewer):
    page = client_for(viewer).get(f"/rag/{collection.pk}/playground/", {"q": "x", "a-mode": "hybrid", "a-k": 0})
    assert page.status_code == 200
    assert "Fix the settings of configuration A" in page.content.decode()


def test_answer_cites_chunks_that_link_to_the_document_and_shows_groundedness(collection, client_for, viewer,
                                                                             stream):
    add_text(collection, "travel.md", HANDBOOK)
    response = client_for(viewer).post(f"/rag/{collection.pk}/answer/", {"q": "How much is the hotel limit per night?"})
    assert response.status_code == 200
    body = response.content.decode()
    link = re.search(r'<a class="cite" href="(/rag/\d+/documents/\d+/\?chunk=(\d+)#chunk-\d+)"', body)
    assert link, body
    assert "150 euros per night" in body
    assert "Groundedness" in body and "rag-grounding" in body
    from apps.costs.models import UsageEvent
    from apps.gateway.recording import drain_all

    drain_all("test-writer")  # the answer's record waits in the recording queue with its groundedness (ADR 0121)
    chat = UsageEvent.objects.get(feature="rag.answer")
    assert chat.source == "rag" and chat.collection_id == collection.pk and chat.groundedness is not None


def test_settings_change_is_audited_and_bad_json_is_explained(collection, client_for, owner):
    c = client_for(owner)
    data = {"description": "New", "data_class": "internal", "answer_prompt": "", "chunking_strategy": "recursive",
            "chunking_chunk_tokens": 200, "chunking_overlap_tokens": 30, "retrieval_json": "{not json"}
    assert "Not valid JSON" in c.post(f"/rag/{collection.pk}/settings/", data).content.decode()
    data["retrieval_json"] = '{"k": 500}'
    assert "k: Return from 1 to 100 results." in c.post(f"/rag/{collection.pk}/settings/", data).content.decode()
    data["retrieval_json"] = '{"k": 5, "fusion": "rrf"}'
    assert c.post(f"/rag/{collection.pk}/settings/", data).status_code == 302
    collection.refresh_from_db()
    assert collection.retrieval["k"] == 5 and collection.description == "New"
    assert AuditEvent.objects.filter(action="rag.collection.update").exists()


def test_only_owners_delete_a_collection(collection, client_for, engineer, owner):
    assert client_for(engineer).post(f"/rag/{collection.pk}/delete/").status_code == 403
    assert client_for(owner).post(f"/rag/{collection.pk}/delete/").status_code == 302
    assert not Collection.objects.filter(pk=collection.pk).exists()
