"""Writes to collections, documents and indexing jobs: validated, atomic, one audit event each.

Documents are upserted by source name and content hash: an unchanged document is skipped (no job, no
event), a changed one gets a new version and is queued, and its old chunks stay searchable until the
indexing job swaps in the new ones in one transaction (indexing.py). Bulk imports write one audit event
for the import, not one per document.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from apps.accounts.models import Team
from apps.audit.services import audit_record, diff
from apps.core.tasks import task_queue
from apps.llm.models import Model, ModelKind
from apps.rag.config import MAX_ATTEMPTS, ChunkingConfig, RetrievalConfig, stale_after
from apps.rag.evaluation import eval_runs_requeue_stuck
from apps.rag.indexing import delete_chunks, delete_collection_rows
from apps.rag.models import (
    ACTIVE_JOB_STATUSES,
    Chunk,
    Collection,
    DataClass,
    Document,
    DocumentFormat,
    DocumentStatus,
    IndexingJob,
    JobStatus,
)
from apps.rag.parsing import content_problem, format_for

log = logging.getLogger(__name__)

COLLECTION_FIELDS = ("description", "data_class", "answer_model", "answer_prompt")
def max_document_bytes() -> int:
    return int(settings.RAG_MAX_DOCUMENT_BYTES)


def max_import_bytes() -> int:
    return int(settings.RAG_MAX_IMPORT_BYTES)


def human_size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


# --- collections ------------------------------------------------------------------------------------

def _validate_embedding_model(model) -> Model:
    if not isinstance(model, Model):
        model = Model.objects.select_related("provider").filter(name=model).first()
    if model is None or model.kind != ModelKind.EMBEDDING:
        raise ValidationError({"embedding_model": "Choose an embedding model from the catalog."})
    if not model.is_active:
        raise ValidationError({"embedding_model": f"The model {model.name} is disabled in the catalog."})
    if not model.embedding_dimensions or not 1 <= model.embedding_dimensions <= 2000:
        raise ValidationError({"embedding_model": "The model needs its vector size (1 to 2,000 dimensions: "
                                                  "pgvector's HNSW limit)."})
    return model


def _validate_answer_model(model) -> Model | None:
    if model in (None, ""):
        return None
    if not isinstance(model, Model):
        model = Model.objects.filter(name=model).first()
    if model is None or model.kind != ModelKind.CHAT:
        raise ValidationError({"answer_model": "Choose a chat model from the catalog."})
    return model


def _prefixed(exc: ValidationError, prefix: str) -> ValidationError:
    return ValidationError({f"{prefix}_{k}" if k != "config" else prefix: v for k, v in exc.message_dict.items()})


def create_hnsw_index(collection: Collection) -> None:
    """The collection's own partial HNSW index (cosine) on its vectors, cast to its dimension."""
    cid, dims = int(collection.pk), int(collection.embedding_dimensions)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {collection.hnsw_index_name} ON rag_chunk "
            f"USING hnsw ((embedding::vector({dims})) vector_cosine_ops) WITH (m = 16, ef_construction = 64) "
            f"WHERE collection_id = {cid}"
        )


def drop_hnsw_index(collection: Collection) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {collection.hnsw_index_name}")


@transaction.atomic
def collection_create(*, team: Team, name: str, embedding_model, description: str = "",
                      data_class: str = DataClass.INTERNAL, chunking: dict | None = None,
                      retrieval: dict | None = None, answer_model=None, answer_prompt: str = "",
                      user=None) -> Collection:
    name = (name or "").strip()
    errors = {}
    if not name:
        errors["name"] = "Give the collection a name."
    elif len(name) > 120:
        errors["name"] = "Keep the name under 120 characters."
    elif Collection.objects.filter(team=team, name=name).exists():
        errors["name"] = f"{team.name} already has a collection named {name}."
    if data_class not in DataClass.values:
        errors["data_class"] = "Choose a data class."
    try:
        model = _validate_embedding_model(embedding_model)
    except ValidationError as exc:
        errors.update(exc.message_dict)
        model = None
    try:
        chat_model = _validate_answer_model(answer_model)
    except ValidationError as exc:
        errors.update(exc.message_dict)
        chat_model = None
    try:
        chunk_config = ChunkingConfig.from_dict(chunking)
    except ValidationError as exc:
        errors.update(_prefixed(exc, "chunking").message_dict)
        chunk_config = None
    try:
        retrieval_config = RetrievalConfig.from_dict(retrieval)
    except ValidationError as exc:
        errors.update(_prefixed(exc, "retrieval").message_dict)
        retrieval_config = None
    if errors:
        raise ValidationError(errors)
    collection = Collection.objects.create(
        team=team, name=name, description=(description or "").strip(), data_class=data_class,
        embedding_model=model, embedding_dimensions=model.embedding_dimensions, answer_model=chat_model,
        answer_prompt=(answer_prompt or "").strip(), chunking=chunk_config.as_dict(),
        retrieval=retrieval_config.as_dict(), created_by=_user(user),
    )
    create_hnsw_index(collection)
    audit_record(action="rag.collection.create", obj=collection, team=team, actor=_user(user), changes={
        "name": name, "data_class": data_class, "embedding_model": model.name,
        "chunking": collection.chunking, "retrieval": collection.retrieval,
    })
    return collection


def _user(user):
    return user if getattr(user, "is_authenticated", False) else None


@transaction.atomic
def collection_update(*, collection: Collection, user=None, chunking: dict | None = None,
                      retrieval: dict | None = None, **fields) -> Collection:
    """Change settings. A new chunking configuration re-indexes every document (atomically, per document)."""
    unknown = set(fields) - set(COLLECTION_FIELDS)
    if unknown:
        raise ValidationError({name: "This field cannot be changed." for name in sorted(unknown)})
    errors = {}
    if "answer_model" in fields:
        try:
            fields["answer_model"] = _validate_answer_model(fields["answer_model"])
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if "data_class" in fields and fields["data_class"] not in DataClass.values:
        errors["data_class"] = "Choose a data class."
    new_chunking = new_retrieval = None
    if chunking is not None:
        try:
            new_chunking = ChunkingConfig.from_dict(chunking).as_dict()
        except ValidationError as exc:
            errors.update(_prefixed(exc, "chunking").message_dict)
    if retrieval is not None:
        try:
            new_retrieval = RetrievalConfig.from_dict(retrieval).as_dict()
        except ValidationError as exc:
            errors.update(_prefixed(exc, "retrieval").message_dict)
    if errors:
        raise ValidationError(errors)
    before = {name: getattr(collection, name) for name in (*COLLECTION_FIELDS, "chunking", "retrieval")}
    for name, value in fields.items():
        setattr(collection, name, value.strip() if isinstance(value, str) else value)
    if new_chunking is not None:
        collection.chunking = new_chunking
    if new_retrieval is not None:
        collection.retrieval = new_retrieval
    after = {name: getattr(collection, name) for name in (*COLLECTION_FIELDS, "chunking", "retrieval")}
    changes = diff({k: str(v) if isinstance(v, Model) else v for k, v in before.items()},
                   {k: str(v) if isinstance(v, Model) else v for k, v in after.items()})
    if not changes:
        return collection
    reindex = "chunking" in changes
    if reindex:  # documents first, then the collection row: the order indexing jobs lock them in
        job = _job_for(collection, Document.objects.filter(collection=collection), trigger="rechunk", user=user)
        changes["reindex_job"] = job.pk if job else None
    collection.updated_at = timezone.now()
    collection.save()
    audit_record(action="rag.collection.update", obj=collection, actor=_user(user), changes=changes)
    return collection


@transaction.atomic
def collection_delete(*, collection: Collection, user=None) -> None:
    snapshot = {"name": collection.name, "documents": collection.documents.count(),
                "chunks": collection.chunk_count}
    team = collection.team
    object_id, repr_ = collection.pk, collection.name
    drop_hnsw_index(collection)
    delete_collection_rows(collection)  # its overlays too (a red-team campaign's planted documents)
    audit_record(action="rag.collection.delete", team=team, object_type="rag.collection", object_id=object_id,
                 object_repr=repr_, actor=_user(user), changes=snapshot)


@transaction.atomic
def collection_share(*, collection: Collection, grantee, action: str = "view", user=None) -> None:
    """Let one user outside the team read (or change) this collection: a django-guardian grant."""
    if action not in ("view", "change"):
        raise ValidationError({"action": "Share for view or change."})
    assign_perm(f"rag.{action}_collection", grantee, collection)
    audit_record(action="rag.collection.share", obj=collection, actor=_user(user),
                 changes={"grantee": grantee.get_username(), "permission": action})


@transaction.atomic
def collection_unshare(*, collection: Collection, grantee, user=None) -> None:
    for action in ("view", "change"):
        remove_perm(f"rag.{action}_collection", grantee, collection)
    audit_record(action="rag.collection.unshare", obj=collection, actor=_user(user),
                 changes={"grantee": grantee.get_username()})


# --- documents --------------------------------------------------------------------------------------

def content_hash(content: bytes, *, fmt: str, title: str = "") -> str:
    digest = hashlib.sha256()
    digest.update(fmt.encode())
    digest.update(b"\x00")
    digest.update(title.encode())
    digest.update(b"\x00")
    digest.update(content)
    return digest.hexdigest()


@dataclass
class DocumentInput:
    source_name: str
    content: bytes
    format: str
    title: str = ""
    metadata: dict = field(default_factory=dict)


@dataclass
class UpsertResult:
    created: list[Document] = field(default_factory=list)
    changed: list[Document] = field(default_factory=list)
    unchanged: list[Document] = field(default_factory=list)
    metadata_only: list[Document] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    job: IndexingJob | None = None

    @property
    def summary(self) -> dict:
        return {"created": len(self.created), "changed": len(self.changed), "unchanged": len(self.unchanged),
                "metadata_updated": len(self.metadata_only), "removed": len(self.removed),
                "job": self.job.pk if self.job else None}


def validate_upload(name: str, size: int) -> str:
    """The format of an uploaded file, or a ValidationError for the file field saying what is wrong."""
    fmt = format_for(name)
    if fmt is None:
        raise ValidationError({"file": f"{name}: the portal reads .txt, .md, .html and .pdf files "
                                       "(or a .jsonl corpus through Import)."})
    if size > max_document_bytes():
        raise ValidationError({"file": f"{name} is {human_size(size)}; the limit is "
                                       f"{human_size(max_document_bytes())} per document."})
    if size == 0:
        raise ValidationError({"file": f"{name} is empty."})
    return fmt


def _validate_inputs(items: list[DocumentInput]) -> None:
    errors = []
    seen = set()
    for i, item in enumerate(items, start=1):
        name = (item.source_name or "").strip()
        where = f"Document {i}" + (f" ({name})" if name else "")
        if not name:
            errors.append(f"{where}: it needs a source name (an id).")
        elif len(name) > 500:
            errors.append(f"{where}: the source name is longer than 500 characters.")
        elif name in seen:
            errors.append(f"{where}: the source name appears twice.")
        seen.add(name)
        if item.format not in DocumentFormat.values:
            errors.append(f"{where}: unknown format {item.format!r}.")
        elif problem := content_problem(item.content, item.format):
            errors.append(f"{where} {problem}.")
        if len(item.content) > max_document_bytes():
            errors.append(f"{where}: {human_size(len(item.content))} is over the "
                          f"{human_size(max_document_bytes())} limit.")
        if not isinstance(item.metadata, dict):
            errors.append(f"{where}: metadata must be a JSON object.")
        if len(errors) >= 20:
            errors.append("… (first 20 problems shown)")
            break
    if errors:
        raise ValidationError({"file": errors})


def documents_upsert(*, collection: Collection, items: list[DocumentInput], user=None,
                     remove_missing: bool = False, trigger: str = "upload", queue_task: bool = True) -> UpsertResult:
    """Add or update documents by source name; queue the new and changed ones in one indexing job.

    Validates everything first and writes in one transaction. `remove_missing` deletes the collection's
    documents that are not in `items` (a sync). Returns what happened to each document.
    """
    _validate_inputs(items)
    with transaction.atomic():
        result = _upsert(collection, items, user=user, remove_missing=remove_missing, trigger=trigger,
                         queue_task=queue_task)
        if result.created or result.changed or result.removed or result.metadata_only:
            if len(items) == 1 and not remove_missing:
                doc = (result.created or result.changed or result.metadata_only)[0]
                action = "rag.document.create" if result.created else "rag.document.update"
                audit_record(action=action, obj=doc, team=collection.team, actor=_user(user), changes={
                    "collection": collection.name, "source_name": doc.source_name, "version": doc.version,
                    "content_hash": doc.content_hash, "size_bytes": doc.size_bytes,
                    "job": result.job.pk if result.job else None,
                })
            else:
                audit_record(action="rag.documents.import", obj=collection, actor=_user(user),
                             changes={"trigger": trigger, **result.summary})
    return result


def _upsert(collection: Collection, items: list[DocumentInput], *, user, remove_missing: bool,
            trigger: str, queue_task: bool) -> UpsertResult:
    result = UpsertResult()
    # Lock only the rows this upsert touches (all of them for a sync, which deletes the missing ones).
    rows = Document.objects.select_for_update().filter(collection=collection).defer("content", "text")
    if not remove_missing:
        rows = rows.filter(source_name__in=[item.source_name.strip() for item in items])
    existing = {d.source_name: d for d in rows.order_by("pk")}
    now = timezone.now()
    to_create, to_update = [], []
    for item in items:
        name = item.source_name.strip()
        digest = content_hash(item.content, fmt=item.format, title=item.title)
        doc = existing.get(name)
        if doc is None:
            doc = Document(collection=collection, source_name=name, title=item.title[:500], format=item.format,
                           content=item.content, size_bytes=len(item.content), content_hash=digest,
                           metadata=item.metadata, status=DocumentStatus.QUEUED, created_by=_user(user),
                           created_at=now, updated_at=now)
            to_create.append(doc)
            result.created.append(doc)
            continue
        if doc.content_hash == digest and doc.status != DocumentStatus.FAILED:
            if doc.metadata != item.metadata:
                doc.metadata = item.metadata
                doc.updated_at = now
                result.metadata_only.append(doc)
            else:
                result.unchanged.append(doc)
            continue
        if doc.content_hash != digest:
            doc.version += 1
        doc.content, doc.content_hash, doc.size_bytes = item.content, digest, len(item.content)
        doc.format, doc.title, doc.metadata = item.format, item.title[:500], item.metadata
        doc.status, doc.error, doc.updated_at = DocumentStatus.QUEUED, "", now
        to_update.append(doc)
        result.changed.append(doc)
    if to_create:
        Document.objects.bulk_create(to_create, batch_size=500)
    if to_update:
        Document.objects.bulk_update(to_update, ["version", "content", "content_hash", "size_bytes", "format",
                                                 "title", "metadata", "status", "error", "updated_at"],
                                     batch_size=500)
    if result.metadata_only:
        Document.objects.bulk_update(result.metadata_only, ["metadata", "updated_at"], batch_size=500)
    for doc in result.metadata_only:
        _chunk_metadata_refresh(doc)
    to_queue = [d.pk for d in (*result.created, *result.changed)]
    if remove_missing:
        wanted = {item.source_name.strip() for item in items}
        gone = [d for name, d in existing.items() if name not in wanted]
        for doc in gone:
            _document_remove(doc)
        result.removed = [d.source_name for d in gone]
    if to_queue:
        result.job = _job_for(collection, Document.objects.filter(pk__in=to_queue), trigger=trigger, user=user,
                              queue_task=queue_task)
    return result


def _chunk_metadata_refresh(doc: Document) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE rag_chunk SET metadata = %s::jsonb || CASE WHEN metadata ? 'page' "
            "THEN jsonb_build_object('page', metadata->'page') ELSE '{}'::jsonb END WHERE document_id = %s",
            [json.dumps(doc.metadata), doc.pk],
        )


def _document_remove(doc: Document) -> None:
    """Delete a document and its chunks (postings cascade), and take them out of the BM25 statistics."""
    doc = Document.objects.select_for_update().filter(pk=doc.pk).first()
    if doc is None:
        return

    old = Chunk.objects.filter(document_id=doc.pk).aggregate(n=Count("pk"), t=Sum("bm25_length"))
    delete_chunks(document_id=doc.pk)
    doc.delete()
    if old["n"]:
        Collection.objects.filter(pk=doc.collection_id).update(chunk_count=F("chunk_count") - old["n"],
                                                               token_total=F("token_total") - (old["t"] or 0))


def document_upload(*, collection: Collection, name: str, content: bytes, user=None, title: str = "",
                    metadata: dict | None = None) -> UpsertResult:
    """One uploaded file: validated (type, size), then upserted by its file name."""
    fmt = validate_upload(name, len(content))
    return documents_upsert(collection=collection, user=user, trigger="upload", items=[
        DocumentInput(source_name=name, content=content, format=fmt, title=title, metadata=metadata or {})])


@transaction.atomic
def document_delete(*, document: Document, user=None) -> None:
    collection = document.collection
    snapshot = {"collection": collection.name, "source_name": document.source_name,
                "version": document.version, "chunks": document.chunk_count}
    object_id, repr_ = document.pk, document.source_name
    _document_remove(document)
    audit_record(action="rag.document.delete", team=collection.team, object_type="rag.document",
                 object_id=object_id, object_repr=repr_, actor=_user(user), changes=snapshot)


@transaction.atomic
def document_retry(*, document: Document, user=None) -> IndexingJob | None:
    """Queue a failed (or stuck) document again, in a new job."""
    document = Document.objects.select_for_update().get(pk=document.pk)
    if document.status == DocumentStatus.INDEXED and not document.is_stale:
        raise ValidationError({"document": "This document is indexed and up to date."})
    job = _job_for(document.collection, Document.objects.filter(pk=document.pk), trigger="retry", user=user)
    audit_record(action="rag.document.retry", obj=document, team=document.collection.team, actor=_user(user),
                 changes={"previous_error": document.error[:500], "job": job.pk if job else None})
    return job


@transaction.atomic
def collection_reindex(*, collection: Collection, user=None, only_failed: bool = False) -> IndexingJob | None:
    docs = Document.objects.filter(collection=collection)
    if only_failed:
        docs = docs.filter(status=DocumentStatus.FAILED)
    job = _job_for(collection, docs, trigger="retry-failed" if only_failed else "reindex", user=user)
    audit_record(action="rag.collection.reindex", obj=collection, actor=_user(user),
                 changes={"only_failed": only_failed, "job": job.pk if job else None,
                          "documents": job.progress_total if job else 0})
    return job


# --- jobs -------------------------------------------------------------------------------------------

def _job_for(collection: Collection, documents, *, trigger: str, user=None,
             queue_task: bool = True) -> IndexingJob | None:
    """A new job owning `documents` (queued); the task is sent once the transaction commits."""
    ids = list(documents.values_list("pk", flat=True))
    if not ids:
        return None
    job = IndexingJob.objects.create(collection=collection, trigger=trigger, progress_total=len(ids),
                                     created_by=_user(user))
    Document.objects.filter(pk__in=ids).update(job=job, status=DocumentStatus.QUEUED, error="",
                                               updated_at=timezone.now())
    if queue_task:
        _send_job(job.pk)
    return job


def _send_job(job_id: int) -> None:
    transaction.on_commit(lambda: task_queue("apps.rag.tasks.indexing_job_run_task", job_id))


def indexing_jobs_requeue_stuck(*, now=None) -> dict:
    """Beat: re-queue jobs whose worker stopped (stale heartbeat) or whose message was lost; give up after
    MAX_ATTEMPTS (their documents fail with a message and a retry button). Also adopt orphan documents."""
    now = now or timezone.now()
    cutoff = now - stale_after()
    report = {"requeued": 0, "failed": 0, "orphans": 0}
    with transaction.atomic():
        stuck = list(IndexingJob.objects.select_for_update(skip_locked=True).filter(
            Q(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff)
            | Q(status=JobStatus.QUEUED, created_at__lt=cutoff)
            & (Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=cutoff))
        ).select_related("collection__team"))
        for job in stuck:
            if job.status == JobStatus.RUNNING and job.attempts >= MAX_ATTEMPTS:
                message = (f"Indexing stopped responding {job.attempts} times; the job was stopped. "
                           "Retry the documents to queue them again.")
                job.status, job.error, job.finished_at, job.run_token = JobStatus.FAILED, message, now, ""
                job.save(update_fields=["status", "error", "finished_at", "run_token"])
                Document.objects.filter(job=job, status__in=[DocumentStatus.QUEUED, DocumentStatus.INDEXING]
                                        ).update(status=DocumentStatus.FAILED, error=message, updated_at=now)
                audit_record(action="rag.indexing_job.fail", obj=job, team=job.collection.team,
                             changes={"reason": "stuck", "attempts": job.attempts})
                report["failed"] += 1
                continue
            was = job.status
            job.status, job.run_token, job.heartbeat_at = JobStatus.QUEUED, "", now  # fences the old run
            job.save(update_fields=["status", "run_token", "heartbeat_at"])
            _send_job(job.pk)
            if was == JobStatus.RUNNING:  # a queued job sent again (its message may be lost) changes no state
                audit_record(action="rag.indexing_job.requeue", obj=job, team=job.collection.team,
                             changes={"was": was, "attempts": job.attempts})
            report["requeued"] += 1
        # Documents left queued with no live job (a job row deleted, a crash between writes): adopt them.
        orphans = (Document.objects.filter(status__in=[DocumentStatus.QUEUED, DocumentStatus.INDEXING],
                                           updated_at__lt=cutoff)
                   .filter(Q(job__isnull=True) | ~Q(job__status__in=ACTIVE_JOB_STATUSES)))
        by_collection: dict[int, list[int]] = {}
        for doc_id, collection_id in orphans.values_list("pk", "collection_id")[:10_000]:
            by_collection.setdefault(collection_id, []).append(doc_id)
        for collection_id, ids in by_collection.items():
            collection = Collection.objects.get(pk=collection_id)
            job = _job_for(collection, Document.objects.filter(pk__in=ids), trigger="sweep")
            audit_record(action="rag.indexing_job.adopt", obj=job, team=collection.team,
                         changes={"documents": len(ids)})
            report["orphans"] += len(ids)
    report["eval_runs"] = eval_runs_requeue_stuck(now=now)
    return report


def corpus_items(text: str) -> list[DocumentInput]:
    """Documents from JSONL (BEIR corpus.jsonl: one {"_id", "title", "text", "metadata"?} per line).

    `id` is accepted for `_id`, and an optional `format` ("txt", "md", "html") says how to read `text`.
    Every line is checked first; the errors name their line.
    """
    items, errors = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            errors.append(f"Line {n}: not valid JSON.")
        else:
            if not isinstance(row, dict):
                errors.append(f"Line {n}: expected a JSON object.")
            elif not str(row.get("_id", row.get("id", ""))).strip():
                errors.append(f"Line {n}: the document needs an \"_id\".")
            elif not isinstance(row.get("text"), str) or not row["text"].strip():
                errors.append(f"Line {n}: the document needs a non-empty \"text\".")
            elif row.get("format", "txt") not in ("txt", "md", "html"):
                errors.append(f"Line {n}: format must be txt, md or html.")
            elif not isinstance(row.get("metadata") or {}, dict):
                errors.append(f"Line {n}: metadata must be a JSON object.")
            else:
                items.append(DocumentInput(
                    source_name=str(row.get("_id", row.get("id"))).strip(), content=row["text"].encode("utf-8"),
                    format=row.get("format", "txt"), title=str(row.get("title") or "").strip()[:500],
                    metadata=row.get("metadata") or {}))
        if len(errors) >= 20:
            errors.append("… (first 20 problems shown)")
            break
    if errors:
        raise ValidationError({"file": errors})
    if not items:
        raise ValidationError({"file": "The file holds no documents."})
    return items
