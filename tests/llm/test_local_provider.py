"""The offline `local` provider: MiniLM embeddings and the deterministic extractive chat model."""

import json
import math

import pytest

from apps.costs.models import UsageEvent
from apps.costs.services import prices_seed
from apps.llm import calls
from apps.llm.offline.extractive import NO_ANSWER, answer

pytestmark = pytest.mark.django_db

RAG_PROMPT = [
    {"role": "system", "content": "Answer only from the numbered passages and cite them like [n]."},
    {"role": "user", "content": (
        "Passages:\n"
        "[1] The Eiffel Tower is in Paris. It was completed in 1889 for the World's Fair.\n"
        "[2] Refunds are issued within 14 days of receiving a return. Store credit is available at once.\n"
        "[3] The support desk is open Monday to Friday, 9:00 to 17:00 CET.\n"
        "\nQuestion: How many days do refunds take?"
    )},
]


def norm(vector):
    return math.sqrt(sum(x * x for x in vector))


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_are_384_dimensional_unit_vectors_and_deterministic(local_models, usage_context):
    texts = ["How do I get a refund?", "Refunds are issued within 14 days.", "The tower is in Paris."]

    first = calls.embed(model="local-minilm", texts=texts, context=usage_context)
    again = calls.embed(model="local-minilm", texts=texts, context=usage_context)

    assert len(first.vectors) == 3 and first.dimensions == 384
    assert all(norm(v) == pytest.approx(1.0, abs=1e-5) for v in first.vectors)
    assert first.vectors == again.vectors
    question, refund, tower = first.vectors
    assert cosine(question, refund) > cosine(question, tower)  # it is a semantic model, not noise


def test_embedding_usage_is_the_word_pieces_minilm_read(local_models, usage_context):
    prices_seed()

    result = calls.embed(model="local-minilm", texts=["hello world"], context=usage_context)

    assert result.usage.input_tokens == 4  # [CLS] hello world [SEP]
    assert result.usage.estimated is False
    event = UsageEvent.objects.get()
    assert (event.operation, event.input_tokens, event.cost) == ("embedding", 4, 0)  # priced, at $0: not unpriced


def test_extractive_answer_cites_the_passage_that_supports_it(local_models, usage_context):
    result = calls.chat(model="local-extractive", messages=RAG_PROMPT, context=usage_context)

    assert result.text == "Refunds are issued within 14 days of receiving a return [2]."
    assert result.finish_reason == "stop"
    assert result.usage.input_tokens > 50 and result.usage.output_tokens > 5
    assert result.usage.estimated is True
    event = UsageEvent.objects.get()
    assert (event.input_tokens, event.output_tokens) == (result.usage.input_tokens, result.usage.output_tokens)


def test_a_context_block_is_numbered_by_paragraph():
    reply = answer([{"role": "user", "content": (
        "Context:\nCats sleep most of the day.\n\nDogs bark at strangers to warn their owners.\n\n"
        "Question: Why do dogs bark?")}])

    assert reply.text == "Dogs bark at strangers to warn their owners [2]."
    assert reply.citations == (2,)


def test_it_says_so_when_the_context_does_not_answer():
    reply = answer([{"role": "user", "content": "[1] Paris is in France.\n\nWhat is the boiling point of mercury?"}])

    assert reply.text == NO_ANSWER and reply.citations == ()


def test_without_context_it_replies_with_the_most_salient_sentences():
    message = ("I need help with our billing export. The CSV export drops rows when an invoice has many lines. "
               "Yesterday it happened twice. The billing export is used by finance every morning.")

    reply = answer([{"role": "user", "content": message}])

    assert reply.text == ("I need help with our billing export. "
                          "The billing export is used by finance every morning.")


def test_the_same_messages_give_the_same_answer():
    assert answer(RAG_PROMPT) == answer(RAG_PROMPT)


def test_max_tokens_cuts_the_answer_and_says_length(local_models, usage_context):
    result = calls.chat(model="local-extractive", messages=RAG_PROMPT, context=usage_context, max_tokens=4)

    assert result.finish_reason == "length"
    assert result.usage.output_tokens <= 4


def test_json_response_format_gets_json(local_models, usage_context):
    result = calls.chat(model="local-extractive", messages=RAG_PROMPT, context=usage_context,
                        response_format={"type": "json_object"})

    assert json.loads(result.text) == {"answer": "Refunds are issued within 14 days of receiving a return [2].",
                                       "citations": [2]}


def test_it_streams_word_by_word(local_models, usage_context):
    stream = calls.chat_stream(model="local-extractive", messages=RAG_PROMPT, context=usage_context)
    deltas = list(stream)

    assert deltas[:3] == ["Refunds", " are", " issued"]
    assert "".join(deltas) == stream.result.text == "Refunds are issued within 14 days of receiving a return [2]."
    assert UsageEvent.objects.count() == 1


def test_the_local_chat_model_is_labelled_offline_and_extractive(local_models):
    assert str(local_models["chat"]) == "Offline extractive (local, no LLM)"
    assert local_models["embedding"].embedding_dimensions == 384
