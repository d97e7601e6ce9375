"""The indexing pipeline a job runs: parse -> chunk -> embed in batches -> write chunks and postings.

    indexing_job_run(job_id)   # called by the Celery task; safe to call twice, resumable

A run claims its job with a conditional UPDATE (queued -> running) and a fresh `run_token`; every write
checks the token, so a run the sweeper gave up on cannot write after the job was re-queued. Documents are
claimed in batches; each batch is parsed and chunked in Python, embedded through `apps.llm.calls.embed`
(one usage event per embedding batch, source rag), then written in one transaction that, per document,
deletes the old chunks (postings cascade), inserts the new chunks, feeds the postings from `rag_tsvector`
(PostgreSQL's `english` configuration after splitting at inner hyphens) and moves the BM25 statistics: the
old version stays searchable until that commit.
A document whose content changed while it was being indexed is left for the job that owns it now.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.audit.services import audit_record
from apps.costs.services import UsageContext
from apps.guardrails.pii import detect_pii
from apps.llm import calls
from apps.llm.errors import LlmError
from apps.rag.chunking import ChunkSpec, chunk_text
from apps.rag.config import DEFAULT_B, DEFAULT_K1, ChunkingConfig
from apps.rag.models import Chunk, Collection, Document, DocumentStatus, IndexingJob, JobStatus
from apps.rag.parsing import ParseError, parse

log = logging.getLogger(__name__)

TRANSIENT = (OperationalError, InterfaceError)
LOCKED_WAITS = 20  # half-second waits for documents another transaction holds


class Fenced(Exception):
    """This run no longer owns the job (the sweeper re-queued it): stop without writing."""


def embed_batch_size() -> int:
    return max(1, int(settings.RAG_EMBED_BATCH))


def claim_batch_size() -> int:
    return max(1, int(settings.RAG_CLAIM_BATCH))


@dataclass
class Prepared:
    document: Document
    content_hash: str
    text: str
    chunks: list[ChunkSpec]
    search_texts: list[str]
    pii_findings: int = 0
    vectors: list = field(default_factory=list)


def search_text(title: str, chunk: ChunkSpec) -> str:
    """What both legs index for a chunk: the document title and heading path give it context."""
    parts = []
    if title and not chunk.heading_path.startswith(title):
        parts.append(title)
    if chunk.heading_path:
        parts.append(chunk.heading_path)
    parts.append(chunk.text)
    return "\n".join(parts)


def prepare(document: Document, config: ChunkingConfig) -> Prepared:
    """Parse and chunk one document (no database writes). Raises ParseError with a readable message."""
    parsed = parse(bytes(document.content), document.format, source_name=document.source_name)
    title = document.title or parsed.title
    if config.strategy == "whole" and len(parsed.text) > 400_000:
        raise ParseError("This document is too long to be one chunk (over 400,000 characters); choose the "
                         "recursive or fixed chunking strategy for this collection.")
    chunks = chunk_text(parsed.text, config, title=title)
    if not chunks:
        raise ParseError("The document has no text to index.")
    if parsed.pages:
        for chunk in chunks:
            page = parsed.page_at(chunk.char_start)
            if page is not None:
                chunk.metadata["page"] = page
    pii = 0
    if document.collection.data_class in ("public", "internal"):
        pii = len(detect_pii(parsed.text[:200_000]))
    return Prepared(document=document, content_hash=document.content_hash, text=parsed.text, chunks=chunks,
                    search_texts=[search_text(title, c) for c in chunks], pii_findings=pii)


def _claim(job: IndexingJob, token: str) -> list[int]:
    with transaction.atomic():
        ids = list(Document.objects.select_for_update(skip_locked=True)
                   .filter(job=job, status__in=[DocumentStatus.QUEUED, DocumentStatus.INDEXING])
                   .order_by("pk").values_list("pk", flat=True)[:claim_batch_size()])
        if ids:
            Document.objects.filter(pk__in=ids).update(status=DocumentStatus.INDEXING)
        _beat(job, token)
    return ids


def _beat(job: IndexingJob, token: str, **increments) -> None:
    updates = {"heartbeat_at": timezone.now(), **{k: F(k) + v for k, v in increments.items() if v}}
    if not IndexingJob.objects.filter(pk=job.pk, run_token=token, status=JobStatus.RUNNING).update(**updates):
        raise Fenced()


def indexing_job_run(job_id: int) -> IndexingJob | None:
    """Run one indexing job to the end. Returns None when the job is gone or not queued (nothing to do)."""
    token = uuid.uuid4().hex
    now = timezone.now()
    claimed = IndexingJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, run_token=token, attempts=F("attempts") + 1, heartbeat_at=now,
        started_at=Coalesce(F("started_at"), now), error="")
    if not claimed:
        return None
    job = IndexingJob.objects.select_related("collection__team", "collection__embedding_model__provider").get(
        pk=job_id)
    collection = job.collection
    config = ChunkingConfig.from_dict(collection.chunking)
    started = time.perf_counter()
    try:
        waits = 0
        while True:
            ids = _claim(job, token)
            if not ids:
                # Rows locked by another transaction (an upload replacing them, an older job writing them)
                # were skipped: wait for them a little; the sweeper adopts anything left behind.
                if waits < LOCKED_WAITS and Document.objects.filter(
                        job=job, status__in=[DocumentStatus.QUEUED, DocumentStatus.INDEXING]).exists():
                    waits += 1
                    time.sleep(0.5)
                    continue
                break
            _index_documents(job, token, collection, config, ids)
    except Fenced:
        log.info("indexing job %s was re-queued while this run worked; stopping", job_id)
        return None
    except TRANSIENT:
        # Hand the job back so the task's retry (or the sweeper) can claim it again.
        IndexingJob.objects.filter(pk=job_id, run_token=token).update(status=JobStatus.QUEUED, run_token="")
        raise
    except Exception as exc:
        log.exception("indexing job %s failed", job_id)
        _job_failed(job, token, f"Indexing stopped: {type(exc).__name__}: {str(exc)[:500]}")
        return IndexingJob.objects.get(pk=job_id)
    return _job_finished(job, token, time.perf_counter() - started)


def _job_finished(job: IndexingJob, token: str, seconds: float) -> IndexingJob:
    with transaction.atomic():
        stats = Document.objects.filter(job=job).aggregate(
            failed=Count("pk", filter=Q(status=DocumentStatus.FAILED)),
            indexed=Count("pk", filter=Q(status=DocumentStatus.INDEXED)))
        updated = IndexingJob.objects.filter(pk=job.pk, run_token=token).update(
            status=JobStatus.SUCCEEDED, finished_at=timezone.now(), heartbeat_at=timezone.now(),
            documents_failed=stats["failed"])
        if not updated:
            return IndexingJob.objects.get(pk=job.pk)
        job.refresh_from_db()
        audit_record(action="rag.indexing_job.finish", obj=job, team=job.collection.team, changes={
            "collection": job.collection.name, "documents": job.progress_total, "indexed": stats["indexed"],
            "failed": stats["failed"], "chunks": job.chunks_written, "seconds": round(seconds, 2),
        })
    return job


def _job_failed(job: IndexingJob, token: str, message: str) -> None:
    with transaction.atomic():
        if not IndexingJob.objects.filter(pk=job.pk, run_token=token).update(
                status=JobStatus.FAILED, error=message, finished_at=timezone.now()):
            return
        Document.objects.filter(job=job, status__in=[DocumentStatus.QUEUED, DocumentStatus.INDEXING]).update(
            status=DocumentStatus.FAILED, error=message, updated_at=timezone.now())
        audit_record(action="rag.indexing_job.fail", obj=job, team=job.collection.team,
                     changes={"error": message})


def _index_documents(job, token, collection, config, ids: list[int]) -> None:
    batch = embed_batch_size()
    pending: list[Prepared] = []
    failures: list[tuple[int, str]] = []
    queued_chunks = 0
    documents = (Document.objects.filter(pk__in=ids).select_related("collection")
                 .only("pk", "collection", "source_name", "title", "format", "content", "content_hash",
                       "collection__data_class").order_by("pk"))
    for document in documents.iterator(chunk_size=64):
        try:
            prepared = prepare(document, config)
        except ParseError as exc:
            failures.append((document.pk, str(exc)))
            continue
        except Exception as exc:  # a parser bug must fail the document, not the job
            log.exception("parsing document %s failed", document.pk)
            failures.append((document.pk, f"The document could not be parsed ({type(exc).__name__})."))
            continue
        pending.append(prepared)
        queued_chunks += len(prepared.chunks)
        if queued_chunks >= batch:
            _flush(job, token, collection, pending, failures)
            pending, failures, queued_chunks = [], [], 0
    if pending or failures:
        _flush(job, token, collection, pending, failures)


def embed_prepared(collection: Collection, prepared: list[Prepared], context: UsageContext | None = None) -> None:
    """The chunks' vectors through the one model call path, in batches of RAG_EMBED_BATCH (one usage event each),
    attributed to `context` (default: the collection's indexing)."""
    texts = [t for p in prepared for t in p.search_texts]
    size = embed_batch_size()
    vectors: list = []
    for start in range(0, len(texts), size):
        batch_context = UsageContext(source="rag", team_id=collection.team_id, collection_id=collection.pk,
                                     feature="rag.indexing") if context is None else \
            dataclasses.replace(context, request_id=uuid.uuid4().hex)  # one usage event per batch
        vectors.extend(calls.embed(model=collection.embedding_model, texts=texts[start:start + size],
                                   context=batch_context).vectors)
    cursor = 0
    for p in prepared:
        p.vectors = vectors[cursor:cursor + len(p.chunks)]
        cursor += len(p.chunks)


def _flush(job, token, collection, prepared: list[Prepared], failures: list[tuple[int, str]]) -> None:
    if prepared:
        try:
            embed_prepared(collection, prepared)
        except TRANSIENT:
            raise
        except Exception as exc:  # LlmError, or a budget refusal from costs: the documents say why
            if not isinstance(exc, LlmError):
                log.warning("embedding for collection %s refused: %s", collection.pk, type(exc).__name__)
            message = f"Embedding failed: {exc}"
            failures.extend((p.document.pk, message) for p in prepared)
            prepared = []
    now = timezone.now()
    with transaction.atomic():
        d_chunks = d_tokens = written = 0
        done = 0
        for p in sorted(prepared, key=lambda p: p.document.pk):
            done += 1
            outcome = _write_document(collection, job, p, now)
            if outcome is None:
                continue  # superseded: a newer upload owns it now
            written += len(p.chunks)
            d_chunks += outcome[0]
            d_tokens += outcome[1]
        for doc_id, message in sorted(failures):
            done += 1
            Document.objects.filter(pk=doc_id, job=job).update(
                status=DocumentStatus.FAILED, error=message[:2000], updated_at=now)
        if d_chunks or d_tokens:
            Collection.objects.filter(pk=collection.pk).update(chunk_count=F("chunk_count") + d_chunks,
                                                               token_total=F("token_total") + d_tokens)
        _beat(job, token, progress_done=done, chunks_written=written)


def _write_document(collection, job, p: Prepared, now) -> tuple[int, int] | None:
    """Swap one document's chunks for the new ones; (Δ chunks, Δ BM25 tokens), or None if superseded."""
    current = (Document.objects.select_for_update().filter(pk=p.document.pk)
               .values("job_id", "content_hash").first())
    if current is None or current["job_id"] != job.pk or current["content_hash"] != p.content_hash:
        return None
    old = Chunk.objects.filter(document_id=p.document.pk).aggregate(n=Count("pk"), t=Sum("bm25_length"))
    delete_chunks(document_id=p.document.pk)
    rows, total = write_chunks(collection.pk, [p])
    Document.objects.filter(pk=p.document.pk).update(
        status=DocumentStatus.INDEXED, error="", text=p.text, indexed_hash=p.content_hash,
        indexed_version=F("version"), indexed_at=now, chunk_count=len(rows), pii_findings=p.pii_findings,
        updated_at=now)
    return len(rows) - (old["n"] or 0), total - (old["t"] or 0)


def write_chunks(collection_id: int, prepared: list[Prepared]) -> tuple[list[Chunk], int]:
    """Insert prepared (and embedded) documents' chunks and their BM25 postings, in one statement each;
    (rows, Σ BM25 lengths)."""
    rows = Chunk.objects.bulk_create([
        Chunk(collection_id=collection_id, document_id=p.document.pk, position=c.position,
              heading_path=c.heading_path, text=c.text, char_start=c.char_start, char_end=c.char_end,
              token_count=c.token_count, metadata={**(p.document.metadata if isinstance(p.document.metadata, dict)
                                                      else {}), **c.metadata}, embedding=vector)
        for p in prepared for c, vector in zip(p.chunks, p.vectors, strict=True)
    ], batch_size=2000)
    return rows, write_postings(collection_id, [r.pk for r in rows], [t for p in prepared for t in p.search_texts])


def delete_collection_rows(collection: Collection) -> None:
    """A collection and everything in it, its overlays first: the BM25 statistics and postings in one statement
    each (the df trigger has nothing left to count down), then the rows (chunks and documents cascade)."""
    for overlay in Collection.objects.filter(overlay_of=collection):
        delete_collection_rows(overlay)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM rag_term_stat WHERE collection_id = %s", [collection.pk])
        cursor.execute("DELETE FROM rag_posting WHERE collection_id = %s", [collection.pk])
    collection.delete()


def delete_chunks(*, document_id: int) -> None:
    """A document's chunks and postings, the postings in one statement (one run of the df trigger, rather
    than one per chunk through ON DELETE CASCADE)."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM rag_posting WHERE chunk_id IN (SELECT id FROM rag_chunk WHERE document_id = %s)",
                       [document_id])
    Chunk.objects.filter(document_id=document_id).delete()


def write_postings(collection_id: int, chunk_ids: list[int], texts: list[str]) -> int:
    """Feed the BM25 postings of these chunks from `rag_tsvector` (PostgreSQL's english configuration after
    splitting at inner hyphens, migration 0004); returns Σ chunk lengths.

    tf is the number of positions of a lexeme in to_tsvector (PostgreSQL keeps at most 256 per lexeme),
    the chunk length the sum of its tfs: the same numbers the reference implementation counts. `impact`
    (the read order for top-k pruning) uses the collection's default k1/b and current average length.
    Document frequencies follow by trigger (rag_term_stat).
    """
    if not chunk_ids:
        return 0
    sql = """
        WITH src AS (
            SELECT * FROM unnest(%s::bigint[], %s::text[]) AS s(chunk_id, body)
        ), lex AS (
            SELECT src.chunk_id, u.lexeme, coalesce(array_length(u.positions, 1), 1) AS tf
            FROM src, unnest(rag_tsvector(src.body)) u
        ), lens AS (
            SELECT chunk_id, sum(tf)::int AS dl FROM lex GROUP BY chunk_id
        ), params AS (
            SELECT coalesce((c.retrieval->>'k1')::float8, %s) AS k1, coalesce((c.retrieval->>'b')::float8, %s) AS b,
                   GREATEST(coalesce(CASE WHEN c.chunk_count > 0 THEN c.token_total::float8 / c.chunk_count END,
                                     (SELECT avg(dl) FROM lens)), 1) AS avgdl
            FROM rag_collection c WHERE c.id = %s
        ), upd AS (
            UPDATE rag_chunk c SET bm25_length = lens.dl FROM lens WHERE c.id = lens.chunk_id RETURNING c.id
        ), ins AS (
            INSERT INTO rag_posting (chunk_id, collection_id, term, tf, dl, impact)
            SELECT lex.chunk_id, %s, lex.lexeme, lex.tf, lens.dl,
                   lex.tf * (params.k1 + 1) / (lex.tf + params.k1 * (1 - params.b + params.b * lens.dl / params.avgdl))
            FROM lex JOIN lens USING (chunk_id) CROSS JOIN params
            RETURNING 1
        )
        SELECT (SELECT coalesce(sum(dl), 0) FROM lens), (SELECT count(*) FROM ins), (SELECT count(*) FROM upd)
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [chunk_ids, texts, DEFAULT_K1, DEFAULT_B, int(collection_id), int(collection_id)])
        total, _postings, _updated = cursor.fetchone()
    return int(total)


__all__ = ["delete_chunks", "delete_collection_rows", "embed_prepared", "indexing_job_run", "prepare", "search_text",
           "write_chunks", "write_postings"]
