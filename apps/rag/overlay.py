"""Overlays: copy-on-write additions to a collection (ADR 0120).

An overlay is a hidden collection (`overlay_of` = the base, `overlay_owner` = who made it, unique) that holds
only the documents someone wants searched *as if* they were in the base: a red-team campaign's planted
documents. Its chunks, vectors and BM25 postings live in the same tables as every collection's, so retrieval
reads them with the base's in the same statements (`retrieval.Overlay`): the BM25 statistics (N, average
length, df) count them, the vector leg searches them exactly. The base is never written: its rows, statistics
and HNSW index stay as they are, and no other search sees the overlay. Overlays have no HNSW index (a few
chunks, searched exactly), no indexing job (documents are written at once), and never show in a list or page.

    overlay = overlay_ensure(base=collection, owner="redteam-campaign:12")
    planted = overlay_plant(overlay=overlay, items=[DocumentInput(...)], context=usage_context)
    retrieve(collection=base, ..., overlay=Overlay(overlay.pk, planted["attack-7"]))
    overlay_delete(overlay=overlay)
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.audit.services import audit_record
from apps.costs.services import UsageContext
from apps.rag.config import ChunkingConfig
from apps.rag.indexing import Prepared, delete_collection_rows, embed_prepared, prepare, write_chunks
from apps.rag.models import Chunk, Collection, Document, DocumentStatus
from apps.rag.parsing import ParseError
from apps.rag.services import DocumentInput, content_hash


def overlay_get(*, owner: str) -> Collection | None:
    return Collection.objects.select_related("embedding_model__provider", "overlay_of").filter(
        overlay_owner=owner).first()


def overlay_ensure(*, base: Collection, owner: str) -> Collection:
    """The overlay `owner` has on `base`, made if it has none (idempotent, safe against a concurrent twin)."""
    found = overlay_get(owner=owner)
    if found is not None:
        return found
    try:
        with transaction.atomic():
            overlay = Collection.objects.create(
                team_id=base.team_id, name=f"overlay {owner} of {base.pk}"[:120], data_class=base.data_class,
                embedding_model_id=base.embedding_model_id, embedding_dimensions=base.embedding_dimensions,
                chunking=base.chunking, retrieval=base.retrieval, overlay_of=base, overlay_owner=owner[:120])
            audit_record(action="rag.overlay.create", obj=overlay, team=base.team,
                         changes={"base": base.pk, "base_name": base.name, "owner": owner})
    except IntegrityError:  # another worker made it first
        found = overlay_get(owner=owner)
        if found is None:
            raise
        return found
    return overlay_get(owner=owner)


def overlay_chunks(*, overlay: Collection) -> dict[str, tuple[int, ...]]:
    """Each overlay document's chunk ids, by source name."""
    out: dict[str, list[int]] = {}
    for name, chunk_id in (Chunk.objects.filter(collection=overlay).order_by("document_id", "position")
                           .values_list("document__source_name", "pk")):
        out.setdefault(name, []).append(chunk_id)
    return {name: tuple(ids) for name, ids in out.items()}


def overlay_plant(*, overlay: Collection, items: list[DocumentInput], context: UsageContext
                  ) -> dict[str, tuple[int, ...]]:
    """Index `items` into the overlay at once (chunked with the base's settings, embedded with its model through
    the one call path under `context`, one usage event per batch); documents already there are left as they
    are. Returns the chunk ids of every document of the overlay, by source name. A document that yields no
    chunk (nothing to index) is left out."""
    have = set(Document.objects.filter(collection=overlay).values_list("source_name", flat=True))
    config = ChunkingConfig.from_dict(overlay.chunking)
    now = timezone.now()
    prepared: list[Prepared] = []
    for item in items:
        if item.source_name in have:
            continue
        have.add(item.source_name)
        document = Document(collection=overlay, source_name=item.source_name[:500], title=item.title[:500],
                            format=item.format, content=item.content, size_bytes=len(item.content),
                            content_hash=content_hash(item.content, fmt=item.format, title=item.title),
                            metadata=item.metadata or {}, status=DocumentStatus.INDEXED, created_at=now,
                            updated_at=now)
        try:
            prepared.append(prepare(document, config))
        except ParseError:
            continue
    if prepared:
        embed_prepared(overlay, prepared, context)
        for p in prepared:
            p.document.text, p.document.indexed_hash = p.text, p.content_hash
            p.document.indexed_version, p.document.indexed_at, p.document.chunk_count = 1, now, len(p.chunks)
        with transaction.atomic():
            Document.objects.bulk_create([p.document for p in prepared], batch_size=500)
            rows, tokens = write_chunks(overlay.pk, prepared)
            Collection.objects.filter(pk=overlay.pk).update(chunk_count=F("chunk_count") + len(rows),
                                                            token_total=F("token_total") + tokens)
    return overlay_chunks(overlay=overlay)


@transaction.atomic
def overlay_delete(*, overlay: Collection) -> bool:
    """Remove an overlay and everything in it; the base is untouched. False when it is already gone."""
    locked = Collection.objects.select_for_update().filter(pk=overlay.pk, overlay_of__isnull=False).first()
    if locked is None:
        return False
    snapshot = {"base": locked.overlay_of_id, "owner": locked.overlay_owner, "documents": locked.documents.count(),
                "chunks": locked.chunk_count}
    team, object_id, name = locked.team, locked.pk, locked.name
    delete_collection_rows(locked)
    audit_record(action="rag.overlay.delete", team=team, object_type="rag.collection", object_id=object_id,
                 object_repr=name, changes=snapshot)
    return True


def overlays_owned(*, prefix: str) -> list[Collection]:
    """The overlays whose owner starts with `prefix` (a sweep's list)."""
    return list(Collection.objects.filter(overlay_of__isnull=False, overlay_owner__startswith=prefix)
                .order_by("pk"))
