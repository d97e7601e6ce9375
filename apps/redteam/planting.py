"""Indirect injection against a RAG collection (ADR 0120): each attack that carries a document has it planted
(with the campaign's document canary) in a campaign-owned overlay of the collection (apps/rag/overlay.py:
copy-on-write, the collection itself never written), and the collection's own hybrid retrieval, with its own
settings, runs the attack's user text as the query over the collection plus that attack's planted document only.
The top chunks, planted or not, are the attack's retrieved context, numbered as RAG answers number them; the
attack records whether its planted document was among them and at which rank.

- `prepare(campaign, usage)`: once per worker run, on the worker's database thread: the overlay made (or found),
  the documents of the attacks still to run planted (embedded through the one call path under the campaign's
  attribution), their queries embedded in batches, the collection's snapshot kept for the report.
- `RagTarget.retrieve(attack_id, query)`: one attack's retrieval (SQL only: the query vector is ready).
- `cleanup(campaign_id)` when the campaign ends, is cancelled or fails; `sweep()` (the beat job) removes what a
  dead worker left: the overlays of campaigns that no longer run.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from apps.costs.services import UsageContext
from apps.evals.targets import TargetError
from apps.llm import calls
from apps.rag import selectors as rag_selectors
from apps.rag.answers import context_text
from apps.rag.config import RetrievalConfig
from apps.rag.indexing import embed_batch_size
from apps.rag.overlay import overlay_delete, overlay_ensure, overlay_get, overlay_plant, overlays_owned
from apps.rag.retrieval import Overlay, retrieve
from apps.rag.services import DocumentInput
from apps.redteam.library_glue import plant_document
from apps.redteam.models import ACTIVE_STATUSES, Attack, AttackStatus, Campaign

OWNER = "redteam-campaign:"
PLANTED = "planted-"


def owner_of(campaign_id: int) -> str:
    return f"{OWNER}{campaign_id}"


def planted_name(attack_id: int) -> str:
    return f"{PLANTED}{attack_id}"


@dataclass
class Retrieved:
    """One attack's retrieval: the context to send, and what it says about the planted document."""

    context: str
    retrieved: bool
    rank: int | None
    evidence: dict


@dataclass
class RagTarget:
    collection: object  # the base collection (rag's Collection, with its embedding model)
    overlay_id: int
    actor: object  # retrieval runs as the campaign's creator: the tenant condition holds
    config: RetrievalConfig
    planted: dict[int, tuple[int, ...]] = field(default_factory=dict)  # attack id -> its planted chunks
    vectors: dict[str, list[float]] = field(default_factory=dict)  # query text -> its vector

    def retrieve(self, attack_id: int, query: str) -> Retrieved:
        """The collection's retrieval for `query`, with this attack's planted document as if it were in it."""
        chunks = self.planted.get(attack_id, ())
        result = retrieve(collection=self.collection, query=query, actor=self.actor, config=self.config,
                          query_vector=self.vectors.get(query.strip()), explain=False,
                          overlay=Overlay(self.overlay_id, chunks))
        planted = set(chunks)
        ranks = [hit.fused_rank for hit in result.hits if hit.chunk_id in planted]
        rank = min(ranks) if ranks else None
        evidence = {
            "collection": self.collection.pk, "query": query[:500], "retrieved": rank is not None, "rank": rank,
            "k": self.config.k, "mode": self.config.mode, "planted_chunks": len(chunks),
            "planted_chunks_retrieved": len(ranks),
            "hits": [{"rank": hit.fused_rank, "source": hit.source_name if hit.chunk_id not in planted else "planted",
                      "planted": hit.chunk_id in planted, "bm25_rank": hit.bm25_rank, "vector_rank": hit.vector_rank}
                     for hit in result.hits],
            "notes": list(result.notes), "ms": result.timings.get("total_ms"),
        }
        return Retrieved(context=context_text(result.hits), retrieved=rank is not None, rank=rank, evidence=evidence)


def prepare(campaign: Campaign, usage: UsageContext) -> RagTarget | None:
    """The campaign's retrieval target for this run (None: no collection, the in-memory context of ADR 0113).
    Raises TargetError when the collection is gone or its creator may no longer read it."""
    if campaign.rag_collection_id is None:
        if campaign.rag_snapshot:
            raise TargetError("The campaign's RAG collection was deleted.")
        return None
    actor = campaign.created_by
    base = rag_selectors.collection_visible(actor=actor, pk=campaign.rag_collection_id) if actor else None
    if base is None:
        raise TargetError("The campaign's RAG collection is gone, or the person who launched the campaign may no "
                          "longer read it.")
    usage = dataclasses.replace(usage, collection_id=base.pk)
    todo = list(Attack.objects.filter(campaign_id=campaign.pk, status__in=[AttackStatus.PENDING, AttackStatus.RUNNING])
                .exclude(document="").values_list("pk", "text", "document"))
    overlay = overlay_ensure(base=base, owner=owner_of(campaign.pk))
    canary = (campaign.canaries or {}).get("document", "")
    items = [DocumentInput(source_name=planted_name(pk), format="txt",
                           content=(plant_document(document, canary) if canary else document).encode())
             for pk, _, document in todo]
    chunks = overlay_plant(overlay=overlay, items=items, context=usage)
    planted = {int(name[len(PLANTED):]): ids for name, ids in chunks.items() if name.startswith(PLANTED)}
    config = RetrievalConfig.from_dict(base.retrieval)
    vectors: dict[str, list[float]] = {}
    if config.mode != "bm25":
        texts = sorted({text.strip() for _, text, _ in todo if text.strip()})
        size = embed_batch_size()
        for start in range(0, len(texts), size):
            batch = texts[start:start + size]
            context = dataclasses.replace(usage, request_id=uuid.uuid4().hex)  # one usage event per batch
            vectors.update(zip(batch, calls.embed(model=base.embedding_model.name, texts=batch,
                                                  context=context).vectors, strict=True))
    if not Attack.objects.filter(campaign_id=campaign.pk).exclude(status=AttackStatus.PENDING).exists():
        # the first run: the collection as the attacks find it (the launch took one too)
        campaign.rag_snapshot = snapshot(base)
        Campaign.objects.filter(pk=campaign.pk).update(rag_snapshot=campaign.rag_snapshot)
    return RagTarget(collection=base, overlay_id=overlay.pk, actor=actor, config=config, planted=planted,
                     vectors=vectors)


def snapshot(collection) -> dict:
    """Which collection, and what it held (documents, chunks, fingerprint), as the report says it."""
    return rag_selectors.collection_snapshot(collection) | {"taken_at": timezone.now().isoformat()}


def cleanup(campaign_id: int) -> bool:
    """Remove the campaign's overlay (its planted documents); the collection is untouched. False: none left."""
    overlay = overlay_get(owner=owner_of(campaign_id))
    return overlay is not None and overlay_delete(overlay=overlay)


def sweep(stall_seconds: float | None = None) -> int:
    """The beat job: overlays of campaigns that no longer run (finished, cancelled, failed, gone), or whose cancel
    a dead worker never carried out (no progress for REDTEAM_STALL_SECONDS). Returns how many were removed."""
    overlays = overlays_owned(prefix=OWNER)
    if not overlays:
        return 0
    ids = {int(o.overlay_owner[len(OWNER):]) for o in overlays if o.overlay_owner[len(OWNER):].isdigit()}
    cutoff = timezone.now() - timedelta(seconds=float(stall_seconds if stall_seconds is not None
                                                      else settings.REDTEAM_STALL_SECONDS))
    alive = set(Campaign.objects.filter(pk__in=ids, status__in=ACTIVE_STATUSES)
                .exclude(Q(cancel_requested=True) & (Q(last_progress_at__lt=cutoff) | Q(last_progress_at__isnull=True)))
                .values_list("pk", flat=True))
    removed = 0
    for overlay in overlays:
        suffix = overlay.overlay_owner[len(OWNER):]
        if not (suffix.isdigit() and int(suffix) in alive):
            removed += overlay_delete(overlay=overlay)
    return removed
