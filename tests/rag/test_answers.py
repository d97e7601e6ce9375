"""Answers: the catalog prompt (production, else latest, else built-in with a note), citations, usage, rerank."""

import json

import pytest

from apps.costs.models import UsageEvent
from apps.gateway.recording import drain_all
from apps.llm.models import Model, ModelKind, Provider, ProviderKind
from apps.llm.results import ChatResult, Usage
from apps.rag.answers import DEFAULT_PROMPT, answer_prompt_ensure, answer_question, build_messages
from apps.rag.config import RetrievalConfig
from apps.rag.rerank import parse_scores
from apps.rag.retrieval import retrieve
from tests.rag.conftest import add_text

pytestmark = pytest.mark.django_db

TEXT = "Refunds are paid within 14 days. Shipping is free for orders above 50 euros."


@pytest.fixture
def shop(collection):
    add_text(collection, "shop.txt", TEXT)
    add_text(collection, "other.txt", "The office is closed on public holidays.")
    return collection


def _ask(collection, user, question="How long do refunds take?"):
    result = retrieve(collection=collection, query=question, actor=user, config=RetrievalConfig(k=2))
    return answer_question(collection=collection, retrieval=result, user=user)


def test_without_the_catalog_prompt_the_built_in_template_is_used_and_said(shop, owner):
    answer = _ask(shop, owner)
    assert answer.prompt_source == "built-in"
    assert any("no prompt named rag/grounded-answer" in n for n in answer.notes)
    assert "14 days [1]" in answer.text and answer.citations == [1]
    assert f'href="/rag/{shop.pk}/documents/' in answer.html


def test_the_catalog_prompt_is_rendered_and_recorded_on_the_usage_event(shop, owner, team, stream):
    answer_prompt_ensure(team=team, actor=owner)
    answer = _ask(shop, owner)
    assert answer.prompt_source == "catalog" and answer.prompt_version == 1
    assert any("no production version yet" in n for n in answer.notes)
    drain_all("test-writer")  # the answer's record waits in the recording queue with its groundedness (ADR 0121)
    event = UsageEvent.objects.get(feature="rag.answer")
    assert (event.source, event.prompt_name, event.prompt_version) == ("rag", DEFAULT_PROMPT, 1)
    assert event.collection_id == shop.pk and event.user_id == owner.pk


def test_the_production_version_wins_over_the_latest(shop, owner, team):
    from apps.prompts.content import Draft
    from apps.prompts.models import Label, Prompt, PromptKind
    from apps.prompts.services import version_create

    answer_prompt_ensure(team=team, actor=owner)
    prompt = Prompt.objects.get(name=DEFAULT_PROMPT)
    Label.objects.create(prompt=prompt, name="production", version=prompt.versions.get(number=1))
    version_create(prompt=prompt, actor=owner, draft=Draft(kind=PromptKind.CHAT, messages=[
        {"role": "user", "content": "DRAFT {% for p in passages %}[{{ p.number }}] {{ p.text }}\n{% endfor %}"
                                    "Question: {{ question }}"}]))
    result = retrieve(collection=shop, query="refunds", actor=owner, config=RetrievalConfig(k=1))
    messages, source = build_messages(shop, "refunds", result.hits)
    assert source["version"] == 1 and source["label"] == "production"
    assert not any("DRAFT" in m["content"] for m in messages)


def test_passages_are_numbered_in_rank_order_in_the_prompt(shop, owner):
    result = retrieve(collection=shop, query="refunds shipping", actor=owner, config=RetrievalConfig(k=2))
    messages, _ = build_messages(shop, "refunds shipping", result.hits)
    user = messages[-1]["content"]
    assert user.startswith("Context:\n[1] ") and "[2] " in user and user.rstrip().endswith("Question: refunds shipping")


def test_the_api_answers_with_citations_and_groundedness(shop, client, owner, team, token_for):
    _, secret = token_for(owner, team, scope="read")
    response = client.post(f"/api/v1/rag/collections/{shop.pk}/answer", {"query": "How long do refunds take?"},
                           content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 200
    body = response.json()
    assert body["citations"][0]["source_name"] == "shop.txt"
    assert body["citations"][0]["url"].endswith(f"#chunk-{body['citations'][0]['chunk_id']}")
    assert body["groundedness"] is not None


def test_parse_scores_reads_json_and_ignores_unknown_ids():
    assert parse_scores('Sure: {"scores": [{"id": 4, "score": 9}, {"id": 99, "score": 3}]}', {4, 5}) == {4: 9.0}
    assert parse_scores("no json here", {1}) == {}


def test_llm_rerank_reorders_with_a_real_chat_model(shop, owner, monkeypatch):
    provider = Provider.objects.create(name="vllm-test", kind=ProviderKind.OPENAI_COMPATIBLE,
                                       base_url="http://127.0.0.1:9/v1")
    shop.answer_model = Model.objects.create(provider=provider, name="real-chat", remote_name="m", kind=ModelKind.CHAT)
    shop.save()
    config = RetrievalConfig(k=2, rerank=False)
    plain = retrieve(collection=shop, query="refunds office", actor=owner, config=config)
    last = plain.hits[-1].chunk_id

    def fake_chat(**kwargs):
        text = json.dumps({"scores": [{"id": last, "score": 10}]})
        return ChatResult(text=text, model="real-chat", provider="vllm-test", usage=Usage(), latency_ms=1, cost=None,
                          finish_reason="stop", usage_event_id=None, request_id="r")

    monkeypatch.setattr("apps.llm.calls.chat", fake_chat)
    reranked = retrieve(collection=shop, query="refunds office", actor=owner, config=config.replace(rerank=True))
    assert reranked.hits[0].chunk_id == last and reranked.hits[0].rerank_score == 10.0
    assert "rerank_ms" in reranked.timings


def test_llm_rerank_with_the_offline_model_is_skipped_with_a_note(shop, owner):
    result = retrieve(collection=shop, query="refunds", actor=owner, config=RetrievalConfig(k=2, rerank=True))
    assert any("real chat model" in n for n in result.notes)


XSS_ANSWER = ("### Refunds\n\nRefunds are paid **within 14 days** [1].\n\n"
              "<script>alert('x')</script><img src=x onerror=alert(1)> [click](javascript:alert(1)) "
              "<a href=\"javascript:alert(2)\" onclick=\"alert(3)\">raw</a> [9]")


def _fake_answer_model(collection, monkeypatch, text):
    provider = Provider.objects.create(name="vllm-answers", kind=ProviderKind.OPENAI_COMPATIBLE,
                                       base_url="http://127.0.0.1:9/v1")
    collection.answer_model = Model.objects.create(provider=provider, name="real-answers", remote_name="m",
                                                   kind=ModelKind.CHAT)
    collection.save()

    def fake_chat(**kwargs):
        return ChatResult(text=text, model="real-answers", provider="vllm-answers", usage=Usage(), latency_ms=1,
                          cost=None, finish_reason="stop", usage_event_id=None, request_id="r")

    monkeypatch.setattr("apps.llm.calls.chat", fake_chat)


def test_the_answer_markdown_is_rendered_sanitised_with_clickable_citations(shop, client_for, viewer, monkeypatch):
    _fake_answer_model(shop, monkeypatch, XSS_ANSWER)
    body = client_for(viewer).post(f"/rag/{shop.pk}/answer/", {"q": "How long do refunds take?"}).content.decode()
    assert 'class="rag-answer-text">' in body, body
    answer = body.split('class="rag-answer-text">')[1].split("</div>")[0]
    assert "<h3>Refunds</h3>" in answer and "<strong>within 14 days</strong>" in answer and "###" not in answer
    assert '<a class="cite" href="/rag/' in answer  # [1] links to the cited chunk
    assert '<span class="cite invalid"' in answer  # [9] was never given
    elements = _elements(answer)
    assert not [tag for tag, _ in elements if tag in ("script", "img", "iframe", "style")]
    attributes = [(name, value or "") for _, attrs in elements for name, value in attrs]
    assert not [name for name, _ in attributes if name.startswith("on")]
    assert not [v for name, v in attributes if name == "href" and not v.startswith(("/", "https:", "http:"))]
    assert "&lt;script&gt;" in answer  # the payload is shown as text, harmless


def _elements(fragment: str) -> list[tuple[str, list]]:
    from html.parser import HTMLParser

    found = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Collect().feed(fragment)
    return found


def test_the_playground_puts_the_answer_before_the_chunk_cards(shop, client_for, viewer):
    page = client_for(viewer).get(f"/rag/{shop.pk}/playground/", {"q": "refunds"}).content.decode()
    assert page.index('id="answer-h"') < page.index('class="rag-hit"')
