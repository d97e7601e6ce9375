"""The offline chat model: deterministic, extractive, no LLM.

Given a question and context passages — numbered `[1] …` lines, or a `Context:` block (paragraphs are
numbered in order) — it answers with the context sentences that best support the question, ranked by
BM25 over sentences (optionally blended with MiniLM similarity, setting LLM_LOCAL_CHAT_SEMANTIC), each
followed by an `[n]` citation of its passage. When nothing in the context matches, it says so instead of
guessing. Without context it replies with the most salient sentences of the user's message.

Same messages in, same text out: no sampling, no clock, no randomness. Good enough to exercise RAG, evals
and the playground end to end with nothing installed; not a language model, and the UI says so.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass

from django.conf import settings

from apps.llm.tokens import estimate_tokens, message_text

NO_ANSWER = "The provided context does not answer this question."
MAX_SENTENCES = 3
RELATIVE_CUTOFF = 0.5  # keep sentences scoring at least half the best one

_MARKER = re.compile(r"(?m)^[ \t]*\[(\d{1,4})\][ \t]*")
_CONTEXT = re.compile(r"(?is)(?:^|\n)[ \t]*(?:context|sources|passages|documents)[ \t]*:[ \t]*\n?(.*?)"
                         r"(?=\n[ \t]*(?:question|q|query)[ \t]*:|\Z)")
_QUESTION = re.compile(r"(?is)(?:^|\n)[ \t]*(?:question|q|query)[ \t]*:[ \t]*(.+)$")
# A passage ends at a blank line, a `Question:` line, or a last line that is itself a question.
_PASSAGE_END = re.compile(r"(?im)\n[ \t]*\n|^[ \t]*(?:question|q|query|answer)[ \t]*:|\n(?=[^\n]*\?\s*\Z)")
_SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9\u00c0-\u00de\u0391-\u03a9\u0410-\u042f\"'(\[])|\n+")
_WORD = re.compile(r"[^\W_]+")
STOPWORDS = frozenset(["a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself", "yourselves", "please", "tell", "give", "explain", "describe", "according", "context", "question", "answer", "passage", "passages", "provided", "say", "says", "said", "does"])


def _stem(word: str) -> str:
    for suffix, repl in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + repl
    return word


def terms(text: str) -> list[str]:
    return [_stem(w) for w in (m.lower() for m in _WORD.findall(text)) if w not in STOPWORDS]


@dataclass(frozen=True)
class Passage:
    number: int
    text: str


@dataclass(frozen=True)
class Answer:
    text: str
    citations: tuple[int, ...]
    finish_reason: str = "stop"


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip() and _WORD.search(s)]


def find_passages(text: str) -> tuple[list[Passage], str]:
    """Passages in `text` and what is left of it without them.

    Numbered `[n]` passages (each ends at the next marker, a blank line or a `Question:` line); else the
    paragraphs of a `Context:` block, numbered 1, 2, … in order.
    """
    markers = list(_MARKER.finditer(text))
    if markers:
        passages, rest, cursor = [], [], 0
        for i, marker in enumerate(markers):
            end = markers[i + 1].start() if i + 1 < len(markers) else len(text)
            body = text[marker.end():end]
            stop = _PASSAGE_END.search(body)
            body = body[: stop.start()] if stop else body
            rest.append(text[cursor:marker.start()])
            cursor = marker.end() + len(body)
            if body.strip():
                passages.append(Passage(int(marker.group(1)), " ".join(body.split())))
        rest.append(text[cursor:])
        return passages, "\n".join(rest)
    block = _CONTEXT.search(text)
    if not block:
        return [], text
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", block.group(1)) if p.strip()]
    passages = [Passage(i, " ".join(p.split())) for i, p in enumerate(paragraphs, start=1)]
    return passages, text[: block.start()] + "\n" + text[block.end():]


def _question_and_passages(messages: list[dict]) -> tuple[str, list[Passage]]:
    prompt_texts = [message_text(m) for m in messages if m.get("role") in ("system", "developer", "user")]
    users = [message_text(m) for m in messages if m.get("role") == "user"]
    last_user = users[-1] if users else (prompt_texts[-1] if prompt_texts else "")
    passages: list[Passage] = []
    for text in prompt_texts:
        passages.extend(find_passages(text)[0])
    asked = _QUESTION.search(last_user)
    if asked:
        question = asked.group(1)
    else:
        question = find_passages(last_user)[1]
        if not terms(question):
            question = last_user
    return question.strip(), passages


def _bm25(query: list[str], docs: list[list[str]], k1: float = 1.2, b: float = 0.75) -> list[float]:
    n = len(docs)
    avg = sum(len(d) for d in docs) / n if n else 0.0
    df = Counter(term for d in docs for term in set(d))
    scores = []
    for doc in docs:
        tf = Counter(doc)
        score = 0.0
        for term in set(query):
            if term in tf:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                score += idf * tf[term] * (k1 + 1) / (tf[term] + k1 * (1 - b + b * len(doc) / (avg or 1)))
        scores.append(score)
    return scores


def _semantic(question: str, sentences: list[str]) -> list[float]:
    from apps.llm.offline.embeddings import embed_texts

    vectors = embed_texts([question, *sentences])
    q = vectors[0]
    return [max(0.0, sum(a * b for a, b in zip(q, v, strict=True))) for v in vectors[1:]]


def _cite(sentence: str, number: int) -> str:
    body = sentence.rstrip()
    end = body[-1] if body[-1] in ".!?" else "."
    return f"{body.rstrip('.!?').rstrip()} [{number}]{end}"


def answer_from_context(question: str, passages: list[Passage]) -> Answer:
    candidates = [(p.number, s) for p in passages for s in split_sentences(p.text)]
    if not candidates:
        return Answer(NO_ANSWER, ())
    query = terms(question)
    docs = [terms(s) for _, s in candidates]
    scores = _bm25(query, docs)
    qset = set(query)
    for i, doc in enumerate(docs):  # a passage that only restates the question is no answer to it
        if qset and len(qset & set(doc)) / len(qset | set(doc)) > 0.8:
            scores[i] = 0.0
    if settings.LLM_LOCAL_CHAT_SEMANTIC:
        top = max(scores) or 1.0
        similarity = _semantic(question, [s for _, s in candidates])
        scores = [0.5 * s / top + 0.5 * (sim if sim > 0.35 else 0.0) for s, sim in zip(scores, similarity,
                                                                                       strict=True)]
    best = max(scores)
    if best <= 0:
        return Answer(NO_ANSWER, ())
    ranked = sorted(range(len(candidates)), key=lambda i: (-scores[i], i))
    chosen, seen = [], set()
    for i in ranked:
        if scores[i] < best * RELATIVE_CUTOFF or len(chosen) == MAX_SENTENCES:
            break
        key = candidates[i][1].lower()
        if key not in seen:
            seen.add(key)
            chosen.append(i)
    text = " ".join(_cite(candidates[i][1], candidates[i][0]) for i in chosen)
    citations = tuple(dict.fromkeys(candidates[i][0] for i in chosen))
    return Answer(text, citations)


def salient_reply(text: str, limit: int = 2) -> Answer:
    """The `limit` sentences carrying the message's most frequent content words, in their original order."""
    sentences = split_sentences(text)
    if len(sentences) <= limit:
        return Answer(" ".join(sentences), ())
    weights = Counter(terms(text))
    scored = [(sum(weights[t] for t in set(terms(s))) / math.sqrt(len(terms(s)) or 1), -i)
              for i, s in enumerate(sentences)]
    keep = sorted(-i for _, i in sorted(scored, reverse=True)[:limit])
    return Answer(" ".join(sentences[i] for i in keep), ())


def _truncate(text: str, max_tokens: int | None) -> tuple[str, bool]:
    if max_tokens is None or estimate_tokens(text) <= max_tokens:
        return text, False
    words = text.split(" ")
    while words and estimate_tokens(" ".join(words)) > max_tokens:
        words.pop()
    return " ".join(words), True


def answer(messages: list[dict], *, max_tokens: int | None = None, response_format: dict | None = None) -> Answer:
    """The model: messages in, an extractive answer out."""
    question, passages = _question_and_passages(messages)
    if passages:
        result = answer_from_context(question, passages)
    else:
        users = [message_text(m) for m in messages if m.get("role") == "user"]
        result = salient_reply(users[-1] if users else "")
    text = result.text
    if response_format and response_format.get("type") in ("json_object", "json_schema"):
        text = json.dumps({"answer": text, "citations": list(result.citations)})
        return Answer(text, result.citations)
    text, cut = _truncate(text, max_tokens)
    return Answer(text, result.citations, "length" if cut else "stop")
