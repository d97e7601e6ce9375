"""Grounded answers: the top chunks, a versioned catalog prompt, one chat call, [n] citations, groundedness.

The prompt is the catalog prompt named by the collection (`answer_prompt`, default `rag/grounded-answer`):
its `production` label if set, else its latest version, rendered with `question` and `passages`
(number, text, source, heading). So RAG prompts go through the same versions, labels and release gates as
every other prompt. If the prompt is missing from the catalog, the built-in template below (the same text
the seed creates) is used and the answer says so. The model is the collection's answer model, else the
prompt version's configured model, else the offline extractive model. Usage is recorded with source rag.
"""

from __future__ import annotations

import dataclasses
import html
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal

from django.urls import reverse
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markdown_it.common.utils import escapeHtml

from apps.core.markdown import markdown_html
from apps.costs.services import UsageContext, usage_groundedness_set
from apps.evals.evaluators.groundedness import groundedness
from apps.gateway import recording
from apps.llm import calls
from apps.llm.cache import CachePolicy
from apps.llm.models import Model
from apps.llm.offline.extractive import split_sentences
from apps.prompts.content import Draft
from apps.prompts.models import Label, Prompt, PromptKind, PromptVersion
from apps.prompts.rendering import render_version
from apps.prompts.services import prompt_create
from apps.rag.models import Collection
from apps.rag.retrieval import Hit, Retrieval
from apps.rag.switches import REFUSE

DEFAULT_PROMPT = "rag/grounded-answer"
SYSTEM_TEXT = (
    "You answer questions using only the numbered passages in the context. After each sentence, cite the "
    "passages it relies on as [1], [2]. If the passages do not contain the answer, say: The provided context "
    "does not answer this question."
)
USER_TEMPLATE = (
    "Context:\n{% for p in passages %}[{{ p.number }}] {{ p.text }}\n\n{% endfor %}Question: {{ question }}"
)
PROMPT_MESSAGES = [{"role": "system", "content": SYSTEM_TEXT}, {"role": "user", "content": USER_TEMPLATE}]
_CITE = re.compile(r"\[(\d{1,3})\]")


@dataclass
class SentenceSupport:
    text: str  # the answer sentence, as written (with its citations)
    cited: list[int]
    supported_by: int | None  # passage number (1-based) of the best support, None if unsupported
    support: float | None = None
    abstention: bool = False


@dataclass
class Answer:
    text: str
    html: str
    citations: list[int]
    invalid_citations: list[int]
    model: str
    prompt_name: str
    prompt_version: int | None
    prompt_source: str  # "catalog" or "built-in"
    latency_ms: int
    input_tokens: int
    output_tokens: int
    cost: object
    groundedness: float | None = None
    sentences: list[SentenceSupport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _passage_text(text: str) -> str:
    """One block per passage: no blank lines (they end a passage), single line breaks kept (table rows)."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return "\n".join(line for line in lines if line)


def passages_for(hits: list[Hit]) -> list[dict]:
    return [{"number": i, "text": _passage_text(h.text), "source": h.source_name, "heading": h.heading_path}
            for i, h in enumerate(hits, start=1)]


def context_text(hits: list[Hit]) -> str:
    """The passages laid out as the built-in answer template lays them out: "[n] text", a blank line between
    (what a red-team campaign puts where retrieved context goes, ADR 0120)."""
    return "\n\n".join(f"[{p['number']}] {p['text']}" for p in passages_for(hits))


def _catalog_version(name: str):
    """The production version of a catalog prompt (else its latest), or None if the prompt does not exist.

    The version carries `.used_label`: "production" or "latest".
    """
    prompt = Prompt.objects.filter(name=name).first()
    if prompt is None:
        return None
    label = Label.objects.filter(prompt=prompt, name="production").select_related("version__prompt").first()
    version = label.version if label is not None else (
        PromptVersion.objects.filter(prompt=prompt).select_related("prompt").order_by("-number").first())
    if version is not None:
        version.used_label = "production" if label is not None else "latest"
    return version


def build_messages(collection: Collection, question: str, hits: list[Hit]) -> tuple[list[dict], dict]:
    """The chat messages for an answer and where they came from (prompt name, version, source)."""
    name = collection.answer_prompt or DEFAULT_PROMPT
    variables = {"question": question, "passages": passages_for(hits)}
    version = _catalog_version(name)
    if version is not None:
        rendered = render_version(version, variables, allow_extra=True)
        return rendered.as_messages(), {"name": name, "version": version.number, "source": "catalog",
                                        "label": version.used_label, "config": version.config or {}}

    env = ImmutableSandboxedEnvironment(autoescape=False)
    messages = [{"role": m["role"], "content": env.from_string(m["content"]).render(**variables)}
                for m in PROMPT_MESSAGES]
    return messages, {"name": name, "version": None, "source": "built-in", "label": "", "config": {}}


def _model_for(collection: Collection, prompt_config: dict):
    if collection.answer_model_id:
        return collection.answer_model
    configured = prompt_config.get("model")
    if configured:
        model = Model.objects.filter(name=configured, kind="chat", is_active=True).first()
        if model is not None:
            return model
    return Model.objects.filter(name="local-extractive").first() or "local-extractive"


def answer_question(*, collection: Collection, retrieval: Retrieval, user=None, check_groundedness: bool = True,
                    model=None, usage_source: str = "rag", feature: str = "rag.answer") -> Answer:
    """Answer `retrieval.query` from its hits with the catalog prompt; cite, record usage, judge support.

    `model` overrides the collection's answer model (an eval run's model); `usage_source`/`feature` label
    the usage event (an eval run records under source eval).
    """
    started = time.perf_counter()
    hits = retrieval.hits
    if retrieval.offline is not None and retrieval.offline.answer == REFUSE:
        return _refused(retrieval.offline.message, collection)
    messages, source = build_messages(collection, retrieval.query, hits)
    model = model or _model_for(collection, source["config"])
    context = UsageContext(source=usage_source, team_id=collection.team_id, collection_id=collection.pk,
                           feature=feature, prompt_name=source["name"], prompt_version=source["version"],
                           user_id=getattr(user, "pk", None) if getattr(user, "is_authenticated", False) else None,
                           switch_id=retrieval.offline.switch_id if retrieval.offline is not None else None)
    config = source["config"]
    scored = check_groundedness and bool(hits)
    held = calls.HeldRecords() if scored else None  # the answer's record waits for its groundedness (ADR 0121)
    result = answer = None
    try:
        result = calls.chat(model=model, messages=messages, context=context, temperature=config.get("temperature"),
                            max_tokens=config.get("max_tokens"), recorder=held,
                            cache=CachePolicy.from_config(config.get("cache")))  # the prompt's opt-in (llm/cache.py)
        answer = _answer_of(result, retrieval, collection, source, started)
        if scored:
            t = time.perf_counter()
            _groundedness(answer, hits, collection, context)
            answer.timings["groundedness_ms"] = round((time.perf_counter() - t) * 1000, 2)
    finally:
        if held is not None:
            _record(held, result, answer.groundedness if answer is not None else None)
    return answer


def _answer_of(result, retrieval: Retrieval, collection: Collection, source: dict, started: float) -> Answer:
    hits = retrieval.hits
    timings = {"answer_ms": round((time.perf_counter() - started) * 1000, 2)}
    cited = [int(n) for n in _CITE.findall(result.text)]
    valid = [n for n in dict.fromkeys(cited) if 1 <= n <= len(hits)]
    invalid = [n for n in dict.fromkeys(cited) if not 1 <= n <= len(hits)]
    answer = Answer(
        text=result.text, html=citations_html(result.text, hits, collection), citations=valid,
        invalid_citations=invalid, model=result.model, prompt_name=source["name"], prompt_version=source["version"],
        prompt_source=source["source"], latency_ms=result.latency_ms, input_tokens=result.usage.input_tokens,
        output_tokens=result.usage.output_tokens, cost=result.cost, timings=timings)
    if retrieval.offline is not None:  # answered without retrieval: say so first, in the answer itself
        answer.text = f"{retrieval.offline.message}\n\n{answer.text}"
        answer.html = f"<p><strong>{html.escape(retrieval.offline.message)}</strong></p>{answer.html}"
        answer.notes.append(retrieval.offline.message)
    if source["source"] == "built-in":
        answer.notes.append(f"The catalog has no prompt named {source['name']}: the built-in template was used. "
                            "Create it (seed_demo does) so answer prompts get versions and release gates.")
    if source["label"] == "latest":
        answer.notes.append(f"{source['name']} has no production version yet: its latest version "
                            f"(v{source['version']}) was used. Promote a version to put answers behind the gates.")
    if invalid:
        answer.notes.append(f"The model cited passages that were not given: {', '.join(map(str, invalid))}.")
    return answer


def _record(held: calls.HeldRecords, result, score: float | None) -> None:
    """The answer's usage event, with its groundedness when one was computed (ADR 0121): the held record goes onto
    the ledger writer's queue (one XADD; written at once if Redis refuses). A call written at once because it held
    a budget reservation gets its score with one UPDATE."""
    released = held.release(recording.queue_record, **({"groundedness": score} if score is not None else {}))
    if not released and score is not None and result is not None:
        usage_groundedness_set(request_id=result.request_id, groundedness=score)


def _refused(message: str, collection: Collection) -> Answer:
    """The answer of a collection switched off with "refuse": its message, no model call."""
    return Answer(text=message, html=f"<p><strong>{html.escape(message)}</strong></p>", citations=[],
                  invalid_citations=[], model="", prompt_name=collection.answer_prompt or DEFAULT_PROMPT,
                  prompt_version=None, prompt_source="", latency_ms=0, input_tokens=0, output_tokens=0, cost=Decimal(0),
                  notes=[message])


# What an answer's Markdown may become (apps/core/markdown.py): text formatting, lists, code, tables, links. No
# scripts, styles, images, forms or event handlers; links only to http(s), mailto or the portal itself.
def citations_html(text: str, hits: list[Hit], collection: Collection) -> str:
    """The answer's Markdown as sanitised HTML, each valid [n] a link to the chunk in its document.

    Raw HTML in the answer stays text (markdown-it with html off); the result then passes an allow-list
    sanitiser (nh3), so a model or a poisoned passage cannot put a script, a handler or a javascript: link on
    the page.
    """
    def link(match: re.Match) -> str:
        n = int(match.group(1))
        if not 1 <= n <= len(hits):
            return f'<span class="cite invalid" title="No passage {n} was given">[{n}]</span>'
        hit = hits[n - 1]
        url = chunk_url(collection.pk, hit.document_id, hit.chunk_id)
        title = html.escape(f"{hit.source_name}" + (f" › {hit.heading_path}" if hit.heading_path else ""))
        return f'<a class="cite" href="{url}" title="{title}" data-chunk="{hit.chunk_id}">[{n}]</a>'

    # Citations live in text only (never inside a link's address or title).
    return markdown_html(text, text_rule=lambda content: _CITE.sub(link, escapeHtml(content)))


def chunk_url(collection_id: int, document_id: int, chunk_id: int) -> str:
    base = reverse("rag:document", kwargs={"pk": collection_id, "doc": document_id})
    return f"{base}?chunk={chunk_id}#chunk-{chunk_id}"


def _groundedness(answer: Answer, hits: list[Hit], collection: Collection, context) -> None:
    """Which answer sentences a passage supports (the evals app's evaluator), sentence by sentence."""
    usage = dataclasses.replace(context, feature="rag.groundedness")
    usage.__dict__.pop("_llm_calls", None)
    usage.request_id = f"{context.request_id[:80]}-g"
    result = groundedness(answer.text, [h.text for h in hits], usage_context=usage)
    answer.groundedness = result.score
    supported = {s: (i, score) for s, i, score in result.supported}
    unsupported = set(result.unsupported)
    abstained = set(result.abstentions)
    for sentence in split_sentences(answer.text):
        bare = re.sub(r"\s*\[\d{1,4}\]", "", sentence).strip()
        cited = [int(n) for n in _CITE.findall(sentence)]
        if bare in supported:
            index, score = supported[bare]
            answer.sentences.append(SentenceSupport(sentence, cited, index + 1, round(score, 3)))
        elif bare in unsupported:
            answer.sentences.append(SentenceSupport(sentence, cited, None))
        elif bare in abstained:
            answer.sentences.append(SentenceSupport(sentence, cited, None, abstention=True))


def answer_prompt_ensure(*, team, actor=None) -> str:
    """Create the default answer prompt in the catalog (owned by `team`) if it does not exist; its name."""
    if Prompt.objects.filter(name=DEFAULT_PROMPT).exists():
        return DEFAULT_PROMPT
    prompt = prompt_create(
        team=team, name=DEFAULT_PROMPT, kind=PromptKind.CHAT, actor=actor, tags=["rag"],
        description="Answer from retrieved passages with [n] citations (used by RAG collections).",
        draft=Draft(kind=PromptKind.CHAT, messages=[dict(m) for m in PROMPT_MESSAGES]),
        commit_message="Default grounded-answer prompt for RAG")
    # `production` moves only through a promotion request (the release gates); until one is approved,
    # answers use the latest version and say so.
    return prompt.name
