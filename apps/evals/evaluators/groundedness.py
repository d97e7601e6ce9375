"""Groundedness: the share of an answer's sentences supported by the context passages.

A sentence is supported when its best passage sentence is close enough, blending MiniLM cosine similarity
(semantics) with term overlap (the answer's content words found in the passage: names and numbers must match,
which embeddings alone blur). Sentences that only abstain ("the context does not say"), questions and sentences
without content words are not counted. Importable by the RAG app:

    from apps.evals.evaluators.groundedness import groundedness
    result = groundedness(answer, [p.text for p in passages])
    result.score, result.supported, result.unsupported
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from apps.costs.models import Source
from apps.costs.services import UsageContext
from apps.evals import conf
from apps.evals.evaluators.deterministic import is_refusal
from apps.llm.calls import embed
from apps.llm.offline.extractive import split_sentences, terms

DEFAULT_THRESHOLD = 0.55
SIMILARITY_WEIGHT = 0.6  # the rest is term overlap
_CITATIONS = re.compile(r"\s*\[\d{1,4}\]")
_ABSTAIN = re.compile(r"\b(?:does not|doesn't|do not|don't) (?:answer|say|mention|cover|contain)\b|"
                      r"\bno information\b|\bnot (?:in|mentioned in) the (?:context|passages|sources)\b",
                      re.IGNORECASE)

EmbedFn = Callable[[list[str]], list[list[float]]]


@dataclass
class GroundednessResult:
    score: float | None  # share of counted sentences supported; None when nothing could be judged
    supported: list[tuple[str, int, float]] = field(default_factory=list)  # (sentence, context index, support)
    unsupported: list[str] = field(default_factory=list)
    abstentions: list[str] = field(default_factory=list)

    @property
    def counted(self) -> int:
        return len(self.supported) + len(self.unsupported)


def default_embed(context=None) -> EmbedFn:
    """Embeddings through the one call path (priced and recorded), with the local MiniLM by default."""
    usage = context or UsageContext(source=Source.EVAL, feature="groundedness")
    model = conf.get("EVALS_EMBEDDING_MODEL") or "local-minilm"

    def run(texts: list[str]) -> list[list[float]]:
        return embed(model=model, texts=texts, context=usage).vectors

    return run


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    na = sum(x * x for x in a) ** 0.5
    nb = sum(y * y for y in b) ** 0.5
    return dot / (na * nb) if na and nb else 0.0


def groundedness(answer: str, contexts: list[str], *, threshold: float = DEFAULT_THRESHOLD,
                 embed_fn: EmbedFn | None = None, usage_context=None) -> GroundednessResult:
    """Score `answer` against `contexts` (0-based indexes in the result). See the module docstring."""
    sentences = [_CITATIONS.sub("", s).strip() for s in split_sentences(answer or "")]
    counted, abstentions = [], []
    for sentence in sentences:
        if not sentence:
            continue
        if _ABSTAIN.search(sentence) or is_refusal(sentence) or sentence.rstrip().endswith("?"):
            abstentions.append(sentence)  # abstentions and questions claim nothing
        elif terms(sentence):
            counted.append(sentence)
    if not counted:
        return GroundednessResult(None, abstentions=abstentions)
    passages = [(i, s) for i, text in enumerate(contexts or []) for s in split_sentences(text or "")]
    if not passages:
        return GroundednessResult(0.0, unsupported=counted, abstentions=abstentions)
    vectors = (embed_fn or default_embed(usage_context))(counted + [s for _, s in passages])
    answer_vectors, passage_vectors = vectors[:len(counted)], vectors[len(counted):]
    passage_terms = {i: set(terms(contexts[i])) for i in {i for i, _ in passages}}
    supported, unsupported = [], []
    for sentence, vector in zip(counted, answer_vectors, strict=True):
        words = set(terms(sentence))
        best, best_index = -1.0, 0
        for (index, _), pvec in zip(passages, passage_vectors, strict=True):
            overlap = len(words & passage_terms[index]) / len(words) if words else 0.0
            support = SIMILARITY_WEIGHT * max(0.0, _cosine(vector, pvec)) + (1 - SIMILARITY_WEIGHT) * overlap
            if support > best:
                best, best_index = support, index
        if best >= threshold:
            supported.append((sentence, best_index, round(best, 4)))
        else:
            unsupported.append(sentence)
    score = len(supported) / (len(supported) + len(unsupported))
    return GroundednessResult(score, supported, unsupported, abstentions)
