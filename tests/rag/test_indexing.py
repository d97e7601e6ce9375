"""The indexing pipeline: incremental (unchanged skipped, changed replaced atomically, removed deleted),
failures with their error and a retry, stuck jobs re-queued, usage recorded per embedding batch."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.costs.models import UsageEvent
from apps.rag import retrieval
from apps.rag.indexing import indexing_job_run
from apps.rag.models import Chunk, Document, DocumentStatus, IndexingJob, JobStatus, Posting
from apps.rag.services import (
    DocumentInput,
    collection_update,
    corpus_items,
    document_delete,
    document_retry,
    document_upload,
    documents_upsert,
    indexing_jobs_requeue_stuck,
)
from tests.rag.conftest import add_text, run_jobs

pytestmark = pytest.mark.django_db


def _items(texts: dict[str, str]) -> list[DocumentInput]:
    return [DocumentInput(source_name=name, content=text.encode(), format="txt") for name, text in texts.items()]


def _stats_match(collection):
    collection.refresh_from_db()
    chunks = Chunk.objects.filter(collection=collection)
    assert collection.chunk_count == chunks.count()
    assert collection.token_total == sum(chunks.values_list("bm25_length", flat=True))
    assert Posting.objects.filter(collection_id=collection.pk).count() == Posting.objects.filter(
        chunk__in=chunks).count()
    with connection.cursor() as cursor:  # the trigger-kept document frequencies equal a recount
        cursor.execute("""
            SELECT count(*) FROM (SELECT term, count(*) AS n FROM rag_posting WHERE collection_id = %s GROUP BY term) p
            FULL JOIN (SELECT term, df FROM rag_term_stat WHERE collection_id = %s AND df <> 0) s USING (term)
            WHERE p.n IS DISTINCT FROM s.df""", [collection.pk, collection.pk])
        assert cursor.fetchone()[0] == 0


def test_upload_indexes_a_document_with_its_chunks_postings_and_freshness(collection, owner):
    result = add_text(collection, "leave.md", "# Leave\n\nEmployees get 25 days of paid leave.", user=owner)
    doc = Document.objects.get(pk=result.created[0].pk)
    assert doc.status == DocumentStatus.INDEXED and doc.error == ""
    assert doc.indexed_at is not None and doc.indexed_hash == doc.content_hash and doc.indexed_version == 1
    assert doc.chunk_count == 1 and doc.text.startswith("# Leave")
    chunk = doc.chunks.get()
    assert chunk.heading_path == "Leave" and chunk.embedding is not None and chunk.bm25_length > 0
    assert set(Posting.objects.filter(chunk=chunk).values_list("term", flat=True)) >= {"leav", "employe", "paid"}
    job = IndexingJob.objects.get(pk=result.job.pk)
    assert job.status == JobStatus.SUCCEEDED and job.progress_done == job.progress_total == 1
    assert job.chunks_written == 1 and job.finished_at and job.heartbeat_at
    _stats_match(collection)
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert "rag.document.create" in actions and "rag.indexing_job.finish" in actions


def test_reimporting_an_unchanged_corpus_skips_everything(collection):
    corpus = {f"d{i}": f"Document {i} talks about subject {i}." for i in range(5)}
    first = documents_upsert(collection=collection, items=_items(corpus), trigger="import")
    run_jobs(collection)
    jobs = IndexingJob.objects.count()
    chunk_ids = set(Chunk.objects.values_list("pk", flat=True))
    events = AuditEvent.objects.count()
    again = documents_upsert(collection=collection, items=_items(corpus), trigger="import")
    assert len(first.created) == 5
    assert len(again.unchanged) == 5 and again.job is None
    assert IndexingJob.objects.count() == jobs
    assert set(Chunk.objects.values_list("pk", flat=True)) == chunk_ids
    assert AuditEvent.objects.count() == events  # nothing changed, nothing recorded


def test_a_changed_document_replaces_its_chunks_and_a_removed_one_is_deleted(collection):
    documents_upsert(collection=collection, items=_items({"a": "Alpha about apples.", "b": "Beta about bananas.",
                                                          "c": "Gamma about grapes."}))
    run_jobs(collection)
    old_b = set(Chunk.objects.filter(document__source_name="b").values_list("pk", flat=True))
    old_a = set(Chunk.objects.filter(document__source_name="a").values_list("pk", flat=True))
    result = documents_upsert(collection=collection, remove_missing=True,
                              items=_items({"a": "Alpha about apples.", "b": "Beta now about blueberries."}))
    assert [d.source_name for d in result.changed] == ["b"]
    assert result.removed == ["c"] and len(result.unchanged) == 1
    # until the job runs, the old version of b stays searchable
    hits = retrieval.bm25_search(collection=collection, query="bananas", limit=5, actor=retrieval.SYSTEM,
                                 k1=1.2, b=0.75)
    assert len(hits) == 1
    run_jobs(collection)
    b = Document.objects.get(source_name="b")
    assert b.version == 2 and b.indexed_version == 2 and b.status == DocumentStatus.INDEXED
    assert set(b.chunks.values_list("pk", flat=True)).isdisjoint(old_b)
    assert set(Chunk.objects.filter(document__source_name="a").values_list("pk", flat=True)) == old_a
    assert not Document.objects.filter(source_name="c").exists()
    assert retrieval.bm25_search(collection=collection, query="bananas", limit=5, actor=retrieval.SYSTEM,
                                 k1=1.2, b=0.75) == []
    assert len(retrieval.bm25_search(collection=collection, query="blueberries grapes", limit=5,
                                     actor=retrieval.SYSTEM, k1=1.2, b=0.75)) == 1
    _stats_match(collection)


def test_a_replacement_that_fails_midway_keeps_the_old_chunks(collection, monkeypatch):
    add_text(collection, "a.txt", "Original text about oranges.")
    old = set(Chunk.objects.values_list("pk", flat=True))
    document_upload(collection=collection, name="a.txt", content=b"New text about lemons.")

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("apps.rag.indexing.write_postings", boom)
    run_jobs(collection)
    doc = Document.objects.get(source_name="a.txt")
    assert doc.status == DocumentStatus.FAILED and "disk full" in doc.error
    assert set(Chunk.objects.values_list("pk", flat=True)) == old  # the transaction rolled back
    assert doc.indexed_version == 1 and doc.version == 2 and doc.is_stale
    _stats_match(collection)


def test_a_broken_pdf_fails_with_its_error_and_can_be_retried(collection, owner):
    result = document_upload(collection=collection, name="report.pdf", content=b"%PDF-1.4\n1 0 obj garbage",
                             user=owner)
    run_jobs(collection)
    doc = Document.objects.get(pk=result.created[0].pk)
    assert doc.status == DocumentStatus.FAILED
    assert "PDF" in doc.error and "could not be read" in doc.error or "no text" in doc.error
    job = IndexingJob.objects.get(pk=result.job.pk)
    assert job.status == JobStatus.SUCCEEDED and job.documents_failed == 1
    retry = document_retry(document=doc, user=owner)
    assert retry is not None and Document.objects.get(pk=doc.pk).status == DocumentStatus.QUEUED
    assert AuditEvent.objects.filter(action="rag.document.retry").exists()


def test_retrying_an_indexed_document_is_refused(collection):
    add_text(collection, "a.txt", "Fine.")
    with pytest.raises(ValidationError):
        document_retry(document=Document.objects.get())


def test_unsupported_and_oversized_uploads_are_refused_with_a_message(collection, settings):
    with pytest.raises(ValidationError, match="reads .txt, .md, .html and .pdf"):
        document_upload(collection=collection, name="sheet.xlsx", content=b"x")
    settings.RAG_MAX_DOCUMENT_BYTES = 100
    with pytest.raises(ValidationError, match="the limit is 100 bytes"):
        document_upload(collection=collection, name="big.txt", content=b"x" * 101)
    assert not Document.objects.exists()


def test_deleting_a_document_removes_its_chunks_postings_and_statistics(collection, owner):
    add_text(collection, "a.txt", "Apples and pears.")
    add_text(collection, "b.txt", "Bananas.")
    document_delete(document=Document.objects.get(source_name="a.txt"), user=owner)
    assert not Posting.objects.filter(term="appl").exists()
    _stats_match(collection)
    assert AuditEvent.objects.filter(action="rag.document.delete").exists()


def test_one_usage_event_per_embedding_batch_with_source_rag(collection, settings):
    settings.RAG_EMBED_BATCH = 4
    documents_upsert(collection=collection, items=_items({f"d{i}": f"Text {i}." for i in range(10)}))
    run_jobs(collection)
    events = UsageEvent.objects.filter(feature="rag.indexing")
    assert events.count() == 3  # 4 + 4 + 2 chunks
    assert set(events.values_list("source", flat=True)) == {"rag"}
    assert set(events.values_list("collection_id", flat=True)) == {collection.pk}


def test_a_stuck_running_job_is_requeued_and_fenced(collection):
    documents_upsert(collection=collection, items=_items({"a": "Some text."}))
    job = IndexingJob.objects.get()
    IndexingJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, run_token="dead-run", attempts=1,
                                                 heartbeat_at=timezone.now() - timedelta(minutes=30))
    report = indexing_jobs_requeue_stuck()
    assert report["requeued"] == 1
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.run_token == ""
    indexing_job_run(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2
    assert Document.objects.get().status == DocumentStatus.INDEXED


def test_a_job_that_keeps_dying_is_failed_with_a_message_and_its_documents_can_be_retried(collection):
    documents_upsert(collection=collection, items=_items({"a": "Some text."}))
    job = IndexingJob.objects.get()
    IndexingJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, run_token="x", attempts=3,
                                                 heartbeat_at=timezone.now() - timedelta(minutes=30))
    assert indexing_jobs_requeue_stuck()["failed"] == 1
    doc = Document.objects.get()
    assert doc.status == DocumentStatus.FAILED and "stopped responding" in doc.error


def test_a_queued_document_whose_job_was_lost_is_adopted(collection):
    documents_upsert(collection=collection, items=_items({"a": "Some text."}))
    IndexingJob.objects.all().delete()
    Document.objects.update(updated_at=timezone.now() - timedelta(minutes=30))
    assert indexing_jobs_requeue_stuck()["orphans"] == 1
    run_jobs(collection)
    assert Document.objects.get().status == DocumentStatus.INDEXED


def test_a_run_that_lost_its_job_stops_without_writing(collection, monkeypatch):
    documents_upsert(collection=collection, items=_items({"a": "Some text."}))
    job = IndexingJob.objects.get()
    from apps.rag import indexing

    real_claim = indexing._claim

    def claim_then_get_requeued(job_, token):
        ids = real_claim(job_, token)
        IndexingJob.objects.filter(pk=job_.pk).update(run_token="someone-else")
        return ids

    monkeypatch.setattr(indexing, "_claim", claim_then_get_requeued)
    assert indexing_job_run(job.pk) is None
    assert not Chunk.objects.exists()


def test_changing_the_chunking_reindexes_every_document(collection, owner):
    add_text(collection, "a.md", "# A\n\n" + " ".join(f"Sentence {i} is here." for i in range(60)))
    before = Chunk.objects.count()
    collection_update(collection=collection, user=owner, chunking={"strategy": "fixed", "chunk_tokens": 40,
                                                                    "overlap_tokens": 10})
    run_jobs(collection)
    assert Chunk.objects.count() > before
    _stats_match(collection)


def test_jsonl_corpus_errors_name_their_line():
    with pytest.raises(ValidationError) as info:
        corpus_items('{"_id": "1", "text": "ok"}\nnot json\n{"_id": "3"}\n')
    messages = info.value.message_dict["file"]
    assert messages == ["Line 2: not valid JSON.", 'Line 3: the document needs a non-empty "text".']


def test_metadata_only_change_updates_chunks_without_reindexing(collection):
    documents_upsert(collection=collection, items=[DocumentInput("a", b"Text.", "txt", metadata={"v": 1})])
    run_jobs(collection)
    chunk_ids = list(Chunk.objects.values_list("pk", flat=True))
    result = documents_upsert(collection=collection, items=[DocumentInput("a", b"Text.", "txt", metadata={"v": 2})])
    assert result.job is None and len(result.metadata_only) == 1
    assert list(Chunk.objects.values_list("pk", flat=True)) == chunk_ids
    assert Chunk.objects.get().metadata == {"v": 2}


def test_deleting_a_collection_drops_its_hnsw_index(collection, owner):
    from apps.rag.services import collection_delete

    name = collection.hnsw_index_name
    collection_delete(collection=collection, user=owner)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [name])
        assert cursor.fetchone()[0] is None
