"""Optional LLM rerank: a real chat model scores each candidate passage 0-10 for the question.

Only with a real chat model (the collection's answer model on a non-local provider): the offline extractive
model cannot judge relevance, so with it the ranking is left as is and a note says why. One chat call per
query (all candidates in one prompt, JSON out), recorded with source rag; a reply that cannot be parsed
leaves the ranking unchanged, with a note.
"""

from __future__ import annotations

import json
import re

from django.conf import settings

from apps.accounts.permissions import user_id_of
from apps.costs.services import UsageContext
from apps.llm import calls
from apps.llm.errors import LlmError
from apps.rag.models import Chunk, Collection

RERANK_INSTRUCTIONS = (
    "Rate how well each passage answers the question, from 0 (irrelevant) to 10 (answers it fully). "
    'Reply with JSON only: {"scores": [{"id": <passage id>, "score": <0-10>}, ...]}.'
)


def llm_rerank(collection: Collection, query: str, ranked: list[tuple[int, float]], *, actor=None
               ) -> tuple[list[tuple[int, float]], dict[int, float], str]:
    if not rerank_available(collection):
        return ranked, {}, "LLM rerank needs a real chat model as the collection's answer model; skipped."

    texts = dict(Chunk.objects.filter(pk__in=[cid for cid, _ in ranked]).values_list("pk", "text"))
    passages = "\n\n".join(f"[{cid}] {' '.join(texts.get(cid, '').split())[:1500]}" for cid, _ in ranked)
    messages = [{"role": "system", "content": RERANK_INSTRUCTIONS},
                {"role": "user", "content": f"Question: {query}\n\nPassages:\n{passages}"}]
    context = UsageContext(source="rag", team_id=collection.team_id, collection_id=collection.pk,
                           feature="rag.rerank", user_id=user_id_of(actor))
    try:
        result = calls.chat(model=collection.answer_model, messages=messages, context=context, temperature=0,
                            response_format={"type": "json_object"})
    except LlmError as exc:
        return ranked, {}, f"LLM rerank failed ({exc}); the fused ranking is shown."
    scores = parse_scores(result.text, {cid for cid, _ in ranked})
    if not scores:
        return ranked, {}, "The rerank reply could not be read; the fused ranking is shown."
    order = {cid: i for i, (cid, _) in enumerate(ranked)}
    reranked = sorted(ranked, key=lambda item: (-scores.get(item[0], -1.0), order[item[0]]))
    return [(cid, scores.get(cid, 0.0)) for cid, _ in reranked], scores, ""


def rerank_available(collection: Collection) -> bool:
    model = collection.answer_model
    return bool(model and model.is_active and model.provider.kind != "local"
                and settings.RAG_LLM_RERANK)


def parse_scores(text: str, ids: set[int]) -> dict[int, float]:
    match = re.search(r"\{.*\}", text or "", re.S)
    if not match:
        return {}
    try:
        data = json.loads(match.group(0))
        rows = data.get("scores", []) if isinstance(data, dict) else []
        out = {}
        for row in rows:
            cid, score = int(row["id"]), float(row["score"])
            if cid in ids:
                out[cid] = max(0.0, min(10.0, score))
        return out
    except (ValueError, TypeError, KeyError):
        return {}
