"""The `rag_collection` eval target: an eval run of the evals app answers each item's question with a
collection's retrieval configuration and answer prompt, and hands the retrieved passages to the evaluators
(groundedness, context relevance) as `contexts`. Registered by apps/rag/hooks.py.

Reference: {"collection_id": 3, "config": {"mode": "hybrid", "k": 5, ...}} (config overrides the collection's
retrieval defaults). Item inputs: `question` (or `query`, or the first text input).
"""

from __future__ import annotations

import hashlib
import json

from django.core.exceptions import ValidationError

from apps.evals.targets import TargetDescription, TargetError, TargetOutput
from apps.rag.answers import DEFAULT_PROMPT, _catalog_version, answer_question
from apps.rag.config import RetrievalConfig
from apps.rag.models import Collection
from apps.rag.retrieval import SYSTEM, retrieve


def _collection_and_config(ref: dict):
    collection_id = ref.get("collection_id") if isinstance(ref, dict) else None
    collection = (Collection.objects.select_related("team", "embedding_model__provider", "answer_model")
                  .filter(pk=collection_id).first() if isinstance(collection_id, int) else None)
    if collection is None:
        raise ValidationError({"target": "Choose a RAG collection to evaluate."})
    config = RetrievalConfig.from_dict({**collection.retrieval, **(ref.get("config") or {})})
    return collection, config


def describe(ref: dict):
    collection, config = _collection_and_config(ref)
    prompt = collection.answer_prompt or DEFAULT_PROMPT
    version = _catalog_version(prompt)
    fingerprint = hashlib.sha256(json.dumps({
        "collection": collection.pk, "config": config.as_dict(), "chunking": collection.chunking,
        "prompt": prompt, "prompt_version": version.content_hash if version else None,
    }, sort_keys=True).encode()).hexdigest()
    return TargetDescription(
        label=f"RAG {collection.name} ({config.mode}, k={config.k})", fingerprint=fingerprint,
        team_id=collection.team_id,
        default_model=collection.answer_model.name if collection.answer_model_id else "local-extractive",
        prompt_id=version.prompt_id if version else None, prompt_version_id=version.pk if version else None,
        variables=["question"],
    )


def prepare(run):
    return _collection_and_config(run.target_ref)


def _question(item) -> str:
    inputs = item.inputs or {}
    for key in ("question", "query", "input"):
        if isinstance(inputs.get(key), str) and inputs[key].strip():
            return inputs[key]
    for value in inputs.values():
        if isinstance(value, str) and value.strip():
            return value
    raise TargetError("The item has no question: give it a `question` input.")


def run(run, item, repetition: int, state):
    collection, config = state
    actor = run.created_by if getattr(run, "created_by_id", None) else SYSTEM
    retrieval = retrieve(collection=collection, query=_question(item), actor=actor, config=config)
    answer = answer_question(collection=collection, retrieval=retrieval, user=getattr(run, "created_by", None),
                             check_groundedness=False, model=getattr(run, "model", None) or None,
                             usage_source="eval", feature=f"eval-run-{run.pk}")
    return TargetOutput(output=answer.text, latency_ms=answer.latency_ms, cost=answer.cost,
                        unpriced=answer.cost is None, input_tokens=answer.input_tokens,
                        output_tokens=answer.output_tokens, contexts=[h.text for h in retrieval.hits])
