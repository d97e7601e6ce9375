"""The offline MiniLM's fast paths (ADR 0044, 0045): plain sentence-transformers' vectors, in input order, on
every runtime; the ONNX graph cached by the weights' hash; torch when ONNX Runtime is not there."""

from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from apps.llm.offline import embeddings, minilm_onnx

TEXTS = [
    "How do I get a refund?",
    "Refunds are issued within 14 days of receiving a return. Store credit is available at once, and a gift "
    "card is refunded as store credit. " * 6,  # long: past the model's window, truncated at 256 word pieces
    "The tower is in Paris.",
    "Aspirin lowers the risk of a second heart attack in adults over sixty who already had one.",
    "",
    "Mitochondrial DNA mutations accumulate with age in human colonic crypt stem cells. " * 3,
    "Ünïcödé — “quotes”, IL-6 and BRCA1 in covid-19",
]


@pytest.fixture
def runtime(monkeypatch):
    """Embed with the given LLM_LOCAL_EMBED_PRECISION, the query cache empty, restored afterwards."""

    def use(value: str) -> str:
        monkeypatch.setattr(settings, "LLM_LOCAL_EMBED_PRECISION", value, raising=False)
        monkeypatch.setattr(embeddings, "_precision", None)
        monkeypatch.setattr(embeddings, "_query_cache", type(embeddings._query_cache)())
        return embeddings.precision()

    return use


def plain_vectors(texts):
    return embeddings.minilm().encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)


@pytest.mark.parametrize("precision", ["auto", "bf16"])
def test_vectors_match_plain_sentence_transformers_in_input_order(runtime, precision):
    runtime(precision)
    plain = plain_vectors(TEXTS)

    ours = np.asarray(embeddings.embed(TEXTS).vectors, dtype=np.float32)

    assert ours.shape == (len(TEXTS), embeddings.DIMENSIONS)
    cosine = (plain * ours).sum(axis=1)  # row by row: a reordering would pair unrelated texts
    assert cosine.min() >= 0.999
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_auto_is_the_fused_onnx_graph_and_gives_plain_vectors_to_float_rounding(runtime):
    assert runtime("auto") == "onnx"

    ours = np.asarray(embeddings.embed(TEXTS).vectors, dtype=np.float32)

    assert np.abs(ours - plain_vectors(TEXTS)).max() < 1e-4
    reversed_texts = list(reversed(TEXTS))  # other batches and paddings, same vector per text
    assert np.allclose(np.asarray(embeddings.embed(reversed_texts).vectors)[::-1], ours, atol=1e-5)


def test_fp32_is_plain_sentence_transformers_exactly(runtime):
    assert runtime("fp32") == "fp32"

    ours = np.asarray(embeddings.embed(TEXTS).vectors, dtype=np.float32)

    assert np.abs(ours - plain_vectors(TEXTS)).max() < 1e-6


def test_without_onnx_runtime_the_torch_path_embeds_and_says_so(runtime, monkeypatch, caplog):
    runtime("onnx")
    monkeypatch.setattr(minilm_onnx, "session", lambda *args: (_ for _ in ()).throw(ImportError("onnxruntime")))

    ours = np.asarray(embeddings.embed(TEXTS[:3]).vectors, dtype=np.float32)

    assert embeddings.precision() in {"bf16", "fp32"}
    assert "embedding with torch" in caplog.text
    assert (ours * plain_vectors(TEXTS[:3])).sum(axis=1).min() >= 0.999


def test_an_unknown_precision_is_auto(runtime):
    assert runtime("fastest-please") == runtime("auto")


def test_token_ids_are_sentence_transformers_own_and_count_the_tokens_read():
    theirs = embeddings.minilm().tokenizer(TEXTS, truncation=True, max_length=embeddings.MAX_SEQ_TOKENS)

    assert embeddings.token_ids(TEXTS) == theirs["input_ids"]
    assert embeddings.embed(TEXTS).tokens == embeddings.count_tokens(TEXTS) == sum(map(len, theirs["input_ids"]))


def test_the_graph_is_named_by_the_weights_hash_and_built_once_when_missing(tmp_path, monkeypatch):
    built = []

    def fake_build(model, directory, variant):
        built.append(variant)
        minilm_onnx.graph_path(directory, variant).write_bytes(b"graph")

    monkeypatch.setattr(minilm_onnx, "build", fake_build)

    first = minilm_onnx.ensure_graph(tmp_path, "fp32", load_model=lambda: None)
    again = minilm_onnx.ensure_graph(tmp_path, "fp32", load_model=lambda: None)

    assert first == again and built == ["fp32"]
    assert minilm_onnx.weights_sha256()[:16] in first.name
    first.unlink()  # a deleted cache file is rebuilt
    minilm_onnx.ensure_graph(tmp_path, "fp32", load_model=lambda: None)
    assert built == ["fp32", "fp32"]


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


def test_a_query_embedded_ahead_runs_the_model_once_and_embed_takes_its_vector(monkeypatch):
    monkeypatch.setattr(embeddings, "_query_cache", type(embeddings._query_cache)())
    expected = embeddings._encode(["does aspirin prevent heart attacks?"])
    runs = []
    encode = embeddings._encode
    monkeypatch.setattr(embeddings, "_encode", lambda texts: runs.append(texts) or encode(texts))

    pending = embeddings.embed_ahead("does aspirin prevent heart attacks?")
    again = embeddings.embed_ahead("does aspirin prevent heart attacks?")  # asked twice: one run
    got = embeddings.embed(["does aspirin prevent heart attacks?"])

    assert got == expected and pending.result() == expected
    assert again is pending or again.result() == expected
    assert runs == [["does aspirin prevent heart attacks?"]]
    assert embeddings.embed(["does aspirin prevent heart attacks?"]) == expected  # the LRU has it now
    assert runs == [["does aspirin prevent heart attacks?"]] and not embeddings._ahead


def test_a_forked_process_embeds_ahead_on_a_thread_of_its_own(monkeypatch):
    monkeypatch.setattr(embeddings, "_query_cache", type(embeddings._query_cache)())
    monkeypatch.setattr(embeddings, "_encode", lambda texts: embeddings.Embedded(vectors=[[0.5] * 384], tokens=3))
    monkeypatch.setattr(embeddings, "_ahead_pid", -1)  # as in a child forked after its parent started the thread
    monkeypatch.setattr(embeddings, "_ahead_pool", None)

    assert embeddings.embed_ahead("child query").result(timeout=5).vectors == [[0.5] * 384]
    assert embeddings._ahead_pid == embeddings.os.getpid() and embeddings._ahead_pool is not None


def test_threads_follow_the_setting_then_the_process_preference(monkeypatch):
    monkeypatch.setattr(settings, "LLM_LOCAL_TORCH_THREADS", 0, raising=False)
    monkeypatch.setattr(embeddings, "_default_threads", 1)
    assert embeddings.threads() == 1
    monkeypatch.setattr(settings, "LLM_LOCAL_TORCH_THREADS", 3, raising=False)
    assert embeddings.threads() == 3


def test_a_derived_variant_is_named_by_its_recipe_so_a_changed_recipe_builds_a_new_file(monkeypatch):
    assert minilm_onnx.variant_tag("fp32") == "fp32"  # the float32 graph keeps its name (caches stay valid)
    before = minilm_onnx.variant_tag("int8")
    recipe = {**minilm_onnx.VARIANTS["int8"], "block_size": 64}
    monkeypatch.setitem(minilm_onnx.VARIANTS, "int8", recipe)

    assert before.startswith("int8.") and minilm_onnx.variant_tag("int8") != before
    with pytest.raises(ValueError):
        minilm_onnx.variant_tag("int3")


def test_the_int8_graph_is_quantised_from_the_cached_float32_graph_without_exporting_again(tmp_path, monkeypatch):
    fp32 = minilm_onnx.graph_path(tmp_path, "fp32")
    fp32.write_bytes(b"fused float32 graph")
    quantised = []

    def fake_quantise(source, target, recipe):
        quantised.append((source, recipe))
        Path(target).write_bytes(b"int8 graph")

    monkeypatch.setattr(minilm_onnx, "quantise", fake_quantise)
    monkeypatch.setattr(minilm_onnx, "_export", lambda *args: pytest.fail("exported again"))

    path = minilm_onnx.ensure_graph(tmp_path, "int8", load_model=lambda: None)

    assert quantised == [(fp32, minilm_onnx.VARIANTS["int8"])]
    assert path.read_bytes() == b"int8 graph" and path != fp32
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == sorted([fp32.name, path.name])


def test_int8_vectors_stay_within_the_measured_distance_of_plain_whatever_the_batch(runtime):
    assert runtime("int8") == "int8"
    plain = plain_vectors(TEXTS)

    ours = np.asarray(embeddings.embed(TEXTS).vectors, dtype=np.float32)

    # ADR 0123: cosine to float32 0.99989 on average, 0.9998 at worst on MED, CISI and a SciFact sample
    assert (plain * ours).sum(axis=1).min() >= 0.999
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    # activations are quantised per text and block, not per batch: a text's vector ignores its batch-mates
    alone = np.asarray([embeddings.embed([text, "a"]).vectors[0] for text in TEXTS[:3]], dtype=np.float32)
    assert np.allclose(alone, ours[:3], atol=1e-4)
