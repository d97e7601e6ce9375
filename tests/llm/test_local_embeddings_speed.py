"""The offline MiniLM's fast path (ADR 0044): the same vectors as plain sentence-transformers, in input order."""

import numpy as np
import pytest

from apps.llm.offline import embeddings

TEXTS = [
    "How do I get a refund?",
    "Refunds are issued within 14 days of receiving a return. Store credit is available at once, and a gift "
    "card is refunded as store credit. " * 6,  # long: near the model's window
    "The tower is in Paris.",
    "Aspirin lowers the risk of a second heart attack in adults over sixty who already had one.",
    "",
    "Mitochondrial DNA mutations accumulate with age in human colonic crypt stem cells. " * 3,
]


def test_vectors_match_plain_sentence_transformers_in_input_order():
    plain = embeddings.minilm().encode(TEXTS, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)

    ours = np.asarray(embeddings.embed(TEXTS).vectors, dtype=np.float32)

    assert ours.shape == (len(TEXTS), embeddings.DIMENSIONS)
    cosine = (plain * ours).sum(axis=1)  # row by row: a reordering would pair unrelated texts
    assert cosine.min() >= 0.999
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_the_token_count_is_the_word_pieces_the_model_read():
    assert embeddings.embed(TEXTS).tokens == embeddings.count_tokens(TEXTS)


@pytest.mark.parametrize("lengths", [[5, 256, 7, 256, 30, 1], [3] * 300, [256] * 40, [], [12]])
def test_length_batches_cover_every_index_once_longest_first_within_the_budget(lengths):
    batches = embeddings.length_batches(lengths, tokens_per_batch=1024, max_texts=64)

    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)
        assert len(batch) <= 64 and (len(batch) == 1 or len(batch) * lengths[batch[0]] <= 1024)


def test_a_repeated_query_comes_from_the_cache_with_the_same_vector(monkeypatch):
    first = embeddings.embed(["which enzyme repairs DNA?"])
    monkeypatch.setattr(embeddings, "_encode", lambda texts: pytest.fail("the model ran again"))

    again = embeddings.embed(["which enzyme repairs DNA?"])

    assert again == first
    again.vectors[0][0] = 42.0  # a caller changing its copy does not change the cache
    assert embeddings.embed(["which enzyme repairs DNA?"]) == first


def test_fp32_precision_turns_autocast_off(monkeypatch):
    monkeypatch.setattr(embeddings, "_precision", None)
    monkeypatch.setenv("LLM_LOCAL_EMBED_PRECISION", "fp32")
    from django.conf import settings

    monkeypatch.setattr(settings, "LLM_LOCAL_EMBED_PRECISION", "fp32", raising=False)

    assert embeddings.precision() == "fp32"
    monkeypatch.setattr(embeddings, "_precision", None)
    monkeypatch.setattr(settings, "LLM_LOCAL_EMBED_PRECISION", "bf16", raising=False)
    assert embeddings.precision() == "bf16"
