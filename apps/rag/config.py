"""Chunking and retrieval settings: plain dataclasses, stored as JSON on the collection, validated in one place.

`RetrievalConfig.from_dict(collection.retrieval)` gives the collection's defaults; the playground and eval
runs override single fields with `config.replace(**changes)`. Validation errors name the field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError

CHUNK_STRATEGIES = {
    "recursive": "Recursive: headings, then paragraphs, then sentences",
    "fixed": "Fixed token windows with overlap",
    "whole": "Whole document (one chunk each)",
}
LEGS = ("bm25", "vector", "hybrid")
MAX_ATTEMPTS = 3  # an indexing job or eval run that stopped responding this often is failed, not re-queued
FUSIONS = {
    "zscore": "Convex combination of z-scored scores",
    "convex": "Convex combination of min-max normalised scores",
    "rrf": "Reciprocal rank fusion (weighted)",
}


def stale_after() -> timedelta:
    """A running job or eval run whose heartbeat is older than this has lost its worker."""
    return timedelta(seconds=int(settings.RAG_JOB_STALE_SECONDS))


# Chosen by the macro average nDCG@10 over SciFact, CISI and MED, never by one collection (ADR 0042,
# bench/rag_collections.py): BM25 k1/b, the fusion, its alpha and the candidates per leg.
DEFAULT_K1 = 2.0
DEFAULT_B = 0.75
DEFAULT_FUSION = "zscore"
DEFAULT_ALPHA = 0.5
DEFAULT_CANDIDATES = 100


@dataclass(frozen=True)
class ChunkingConfig:
    strategy: str = "recursive"
    chunk_tokens: int = 200  # MiniLM reads 256 word pieces; leave room for the heading path
    overlap_tokens: int = 30

    @classmethod
    def from_dict(cls, data: dict | None) -> ChunkingConfig:
        return _build(cls, data or {})

    def validate(self) -> None:
        errors = {}
        if self.strategy not in CHUNK_STRATEGIES:
            errors["strategy"] = f"Choose one of: {', '.join(CHUNK_STRATEGIES)}."
        if not 20 <= self.chunk_tokens <= 4000:
            errors["chunk_tokens"] = "Chunks hold from 20 to 4,000 tokens."
        if not 0 <= self.overlap_tokens < self.chunk_tokens // 2 + 1:
            errors["overlap_tokens"] = "Overlap must be at least 0 and at most half the chunk size."
        if errors:
            raise ValidationError(errors)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RetrievalConfig:
    mode: str = "hybrid"  # which leg answers: bm25, vector or hybrid
    k: int = 8  # results returned
    candidates: int = DEFAULT_CANDIDATES  # per leg, before fusion
    k1: float = DEFAULT_K1
    b: float = DEFAULT_B
    ef_search: int = 100
    fusion: str = DEFAULT_FUSION
    rrf_k: int = 60
    bm25_weight: float = 1.0  # RRF leg weights
    vector_weight: float = 1.0
    alpha: float = DEFAULT_ALPHA  # zscore/convex: weight of the vector leg's normalised score
    mmr: bool = False
    mmr_lambda: float = 0.7
    rerank: bool = False  # LLM rerank, when the collection's answer model is a real chat model
    filters: dict = field(default_factory=dict)  # metadata filter: {"key": "value"} (JSON containment)

    @classmethod
    def from_dict(cls, data: dict | None) -> RetrievalConfig:
        return _build(cls, data or {})

    def replace(self, **changes) -> RetrievalConfig:
        known = {f.name for f in fields(self)}
        config = dataclasses.replace(self, **{k: v for k, v in changes.items() if k in known})
        config.validate()
        return config

    def validate(self) -> None:
        errors = {}
        if self.mode not in LEGS:
            errors["mode"] = f"Choose one of: {', '.join(LEGS)}."
        if not 1 <= self.k <= 100:
            errors["k"] = "Return from 1 to 100 results."
        if not 1 <= self.candidates <= 1000:
            errors["candidates"] = "Fetch from 1 to 1,000 candidates per leg."
        if not 0 <= self.k1 <= 5:
            errors["k1"] = "k1 goes from 0 to 5 (1.2 is usual)."
        if not 0 <= self.b <= 1:
            errors["b"] = "b goes from 0 (no length normalisation) to 1."
        if not 1 <= self.ef_search <= 1000:
            errors["ef_search"] = "hnsw.ef_search goes from 1 to 1,000."
        if self.fusion not in FUSIONS:
            errors["fusion"] = f"Choose one of: {', '.join(FUSIONS)}."
        if not 1 <= self.rrf_k <= 1000:
            errors["rrf_k"] = "The RRF constant goes from 1 to 1,000 (60 is usual)."
        if self.bm25_weight < 0 or self.vector_weight < 0 or self.bm25_weight + self.vector_weight <= 0:
            errors["bm25_weight"] = "Leg weights are at least 0, and not both 0."
        if not 0 <= self.alpha <= 1:
            errors["alpha"] = "alpha goes from 0 (BM25 only) to 1 (vector only)."
        if not 0 <= self.mmr_lambda <= 1:
            errors["mmr_lambda"] = "λ goes from 0 (diversity only) to 1 (relevance only)."
        if not isinstance(self.filters, dict) or not all(isinstance(k, str) for k in self.filters):
            errors["filters"] = 'Filters are a JSON object, e.g. {"team": "support"}.'
        if errors:
            raise ValidationError(errors)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def pool(self) -> int:
        """How many results each leg fetches: enough for fusion and for the caller's k."""
        return max(self.k, self.candidates)


def _build(cls, data: dict):
    if not isinstance(data, dict):
        raise ValidationError({"config": "Settings are a JSON object."})
    known = {f.name: f for f in fields(cls)}
    values = {}
    errors = {}
    for name, value in data.items():
        if name not in known:
            continue  # settings of an older version are ignored, not fatal
        default = known[name].default
        try:
            if isinstance(default, bool):
                value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "on", "yes")
            elif isinstance(default, int):
                value = int(value)
            elif isinstance(default, float):
                value = float(value)
        except (TypeError, ValueError):
            errors[name] = f"{value!r} is not a number."
            continue
        values[name] = value
    if errors:
        raise ValidationError(errors)
    config = cls(**values)
    config.validate()
    return config
