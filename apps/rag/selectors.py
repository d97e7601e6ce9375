"""Reads used by views and the API, already restricted (in SQL) to what the actor may see."""

from __future__ import annotations

import functools

from django.db import connection
from django.db.models import Count, Max, Min, Q, QuerySet, Sum
from django.http import Http404
from django.shortcuts import get_object_or_404

from apps.accounts.permissions import Action, get_object_for, restrict, teams_for
from apps.core.rows import columns_plan, row_instances
from apps.llm.models import Model
from apps.rag.models import (
    ACTIVE_JOB_STATUSES,
    Collection,
    Document,
    DocumentStatus,
    IndexingJob,
    RetrievalDataset,
    RetrievalEvalRun,
)
from apps.rag.retrieval import tenant_condition


def collection_list(*, actor) -> QuerySet[Collection]:
    """The collections the actor may see (never an overlay: overlay.py)."""
    return (restrict(Collection.objects.filter(overlay_of__isnull=True), actor, Action.VIEW)
            .select_related("team", "embedding_model")
            .annotate(document_total=Count("documents", distinct=True),
                      failed_total=Count("documents", filter=Q(documents__status=DocumentStatus.FAILED),
                                         distinct=True),
                      oldest_indexed=Min("documents__indexed_at"), newest_indexed=Max("documents__indexed_at"))
            .order_by("team__name", "name"))


def collection_get(*, actor, pk: int, action: Action | str = Action.VIEW) -> Collection:
    """404 if the actor may not see it, 403 if they may see it but not do `action`."""
    return get_object_for(actor, Collection.objects.filter(overlay_of__isnull=True).select_related(
        "team", "embedding_model__provider", "answer_model__provider"), action, pk=pk)


@functools.cache
def _search_lookup_plan() -> tuple[str, list]:
    """One statement for a collection and its embedding model, its text made once per process from the
    models' own fields (the ORM built it on every search request: ~1 ms of CPU, more than the query)."""
    columns, plan = columns_plan([(Collection, "c"), (Model, "m")])
    sql = (f'SELECT {columns} FROM "{Collection._meta.db_table}" c '
           f'JOIN "{Model._meta.db_table}" m ON m."id" = c."embedding_model_id" '
           f'WHERE c."id" = %s AND c."overlay_of_id" IS NULL AND ')
    return sql, plan


def collection_get_for_search(*, actor, pk: int) -> Collection:
    """The collection a search reads, with its embedding model (404 if the actor may not see it), checked with
    the very permission condition the retrieval legs carry (`tenant_condition`, compiled once per process
    for the actor's facts), in one statement whose text is made once per process (ADR 0044, 0047)."""
    condition, params = tenant_condition(actor, int(pk))
    sql, plan = _search_lookup_plan()
    with connection.cursor() as cursor:
        cursor.execute(sql + condition, [int(pk), *params])
        row = cursor.fetchone()
    if row is None:
        raise Http404("No collection matches the given query.")
    collection, embedding_model = row_instances(plan, row)
    collection.embedding_model = embedding_model
    return collection


def collection_visible(*, actor, pk: int) -> Collection | None:
    """A collection by id if the actor may see it, else None (for a choice posted from a form)."""
    return restrict(Collection.objects.filter(overlay_of__isnull=True), actor, Action.VIEW).filter(pk=pk).first()


def collection_snapshot(collection: Collection) -> dict:
    """What a collection holds now, to say later which one was used: its documents, chunks and BM25 tokens,
    the newest indexing time, and a fingerprint of its indexed content (a digest of every document's source name
    and indexed hash: the same fingerprint means the same indexed documents)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), max(indexed_at), md5(coalesce(string_agg(source_name || ':' || indexed_hash, ',' "
            "ORDER BY source_name), '')) FROM rag_document WHERE collection_id = %s AND status = %s",
            [collection.pk, DocumentStatus.INDEXED])
        documents, newest, fingerprint = cursor.fetchone()
    return {"id": collection.pk, "name": collection.name, "team": collection.team.name,
            "documents": documents, "chunks": collection.chunk_count, "tokens": collection.token_total,
            "newest_indexed": newest.isoformat() if newest else None, "fingerprint": fingerprint[:16],
            "embedding_model": collection.embedding_model.name, "retrieval": dict(collection.retrieval or {})}


def collection_by_pk(*, pk: int) -> Collection | None:
    """A collection by id, unchecked: for the portal's own checks (reviews' automatic conditions)."""
    return Collection.objects.filter(pk=pk).first()


def pii_findings_total(collection: Collection) -> int:
    """PII findings over the collection's documents (0 when it was redacted before indexing)."""
    return collection.documents.aggregate(total=Sum("pii_findings"))["total"] or 0


def teams_that_may_create(actor):
    return teams_for(actor, Action.CHANGE)


def document_list(*, collection: Collection, status: str = "", search: str = "") -> QuerySet[Document]:
    docs = Document.objects.filter(collection=collection).defer("content", "text")
    if status:
        docs = docs.filter(status=status)
    if search:
        docs = docs.filter(Q(source_name__icontains=search) | Q(title__icontains=search))
    return docs.order_by("source_name")


def document_get(*, collection: Collection, pk: int) -> Document:
    return get_object_or_404(Document.objects.defer("content"), collection=collection, pk=pk)


def status_counts(collection: Collection) -> dict[str, int]:
    counts = dict(Document.objects.filter(collection=collection).values_list("status").annotate(n=Count("pk")))
    return {status: counts.get(status, 0) for status in DocumentStatus.values}


def freshness(collection: Collection) -> dict:
    return Document.objects.filter(collection=collection, indexed_at__isnull=False).aggregate(
        oldest=Min("indexed_at"), newest=Max("indexed_at"))


def active_jobs(collection: Collection) -> list[IndexingJob]:
    return list(IndexingJob.objects.filter(collection=collection, status__in=ACTIVE_JOB_STATUSES)
                .order_by("created_at"))


def recent_jobs(collection: Collection, limit: int = 5) -> list[IndexingJob]:
    return list(IndexingJob.objects.filter(collection=collection).order_by("-created_at")[:limit])


def dataset_list(*, collection: Collection) -> QuerySet[RetrievalDataset]:
    return RetrievalDataset.objects.filter(collection=collection).order_by("name")


def run_list(*, collection: Collection) -> QuerySet[RetrievalEvalRun]:
    return (RetrievalEvalRun.objects.filter(Q(collection=collection) | Q(dataset__collection=collection))
            .select_related("dataset", "collection").order_by("-created_at"))


def run_get(*, collection: Collection, pk: int) -> RetrievalEvalRun:
    return get_object_or_404(RetrievalEvalRun.objects.select_related("dataset", "collection"),
                             Q(collection=collection) | Q(dataset__collection=collection), pk=pk)
