"""Runtime candidates for the offline MiniLM: speed, closeness to float32 and nDCG@10 (issue #18, ADR 0123).

    python -m bench.rag_embedding_candidates build    [--candidates a,b]
    python -m bench.rag_embedding_candidates cosine   [--candidates a,b] [--sample 100]
    python -m bench.rag_embedding_candidates sensitivity [--sample 48]
    python -m bench.rag_embedding_candidates speed    [--candidates a,b] [--compare 160] [--rounds 2] [--queries 100]
    python -m bench.rag_embedding_candidates ndcg     [--candidates a,b] [--collections scifact,cisi,med]
    python -m bench.rag_embedding_candidates noise    [--trials 20]   (after `ndcg` saved float32's vectors)

Every candidate is a graph derived from the portal's fused float32 graph (apps/llm/offline/minilm_onnx.py,
exported from the shipped weights) plus how it is run (threads, batch budget), embedded the portal's way
(`embeddings.encode_ids`: length buckets). Graphs and vectors are kept under bench/results/rag-int8/ (not in the
repository) so each stage resumes. Folders: SCIFACT_DIR, CISI_DIR, MED_DIR (BEIR layout).

- `cosine`: the first `--sample` documents and 30 queries of each collection, cosine of each text's vector to
  float32's (mean, min): the cheap filter before `ndcg`.
- `sensitivity`: int8 (dynamic, per-channel) on ONE node at a time; 1 - mean cosine per node.
- `speed`: plain sentence-transformers, float32 and each candidate on the first `--compare` SciFact abstracts,
  alternated `--rounds` times (best of), chunks/s and per CPU-second, with the load average; then one query at
  a time with one thread (p50/p95 ms, wall and CPU).
- `ndcg`: nDCG@10 by exact cosine on the test qrels of each collection: documents in length buckets, queries
  one at a time (the query path); float32's vectors are the reference.
- `noise`: the bar's resolution: nDCG@10 of float32's vectors with random noise at a given mean cosine.
Prints JSON and appends it to bench/results/rag-int8/results.jsonl.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
OUT = BASE_DIR / "bench" / "results" / "rag-int8"
COLLECTIONS = {"scifact": "SCIFACT_DIR", "cisi": "CISI_DIR", "med": "MED_DIR"}

from bench.rag_embedding_quality import _read_beir, ndcg_at_10  # noqa: E402

# ---- graph transforms (fp32 fused graph -> candidate graph) ----------------------------------------------------

def _dynamic(fp32: Path, out: Path, *, per_channel=True, reduce_range=False, ops=("MatMul", "Attention"),
             include=None, exclude=()) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(out), op_types_to_quantize=list(ops), per_channel=per_channel,
                     reduce_range=reduce_range, weight_type=QuantType.QInt8, nodes_to_quantize=include,
                     nodes_to_exclude=list(exclude), extra_options={"MatMulConstBOnly": True, "DefaultTensorType": 1})


def _nbits(fp32: Path, out: Path, *, bits=8, block=32, level=4, symmetric=True) -> None:
    from apps.llm.offline import minilm_onnx

    minilm_onnx.quantise(fp32, out, {"quantiser": "matmul_nbits", "bits": bits, "block_size": block,
                                     "is_symmetric": symmetric, "accuracy_level": level})


def _refuse(fp32: Path, out: Path, **fusion) -> None:
    """The raw export fused again with other fusion options (e.g. attention left as MatMuls, so weight-only
    quantisation reaches the Q/K/V projections too)."""
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    from apps.llm.offline import embeddings, minilm_onnx

    raw = out.with_suffix(".raw.onnx")
    if not raw.exists():
        minilm_onnx._export(embeddings.minilm(), raw)
    options = FusionOptions("bert")
    for key, value in fusion.items():
        setattr(options, key, value)
    model = optimizer.optimize_model(str(raw), model_type="bert", num_heads=minilm_onnx.HEADS,
                                     hidden_size=minilm_onnx.HIDDEN, opt_level=0, use_gpu=False,
                                     optimization_options=options)
    print("fused:", model.get_fused_operator_statistics(), file=sys.stderr)
    model.save_model_to_file(str(out))


def _static(fp32: Path, out: Path, *, method="MinMax", activation="QUInt8") -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from apps.llm.offline import embeddings

    texts = sample_texts(24, queries=8)  # calibration: corpus text of the three collections
    feeds = []
    for i in range(0, len(texts), 8):
        ids = embeddings.token_ids(texts[i: i + 8])
        width = max(map(len, ids))
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for r, row in enumerate(ids):
            input_ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        feeds.append({"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)})

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(feeds)

        def get_next(self):
            return next(self.items, None)

    quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=getattr(QuantType, activation), weight_type=QuantType.QInt8,
                    op_types_to_quantize=["MatMul"], calibrate_method=getattr(CalibrationMethod, method),
                    extra_options={"MatMulConstBOnly": True, "DefaultTensorType": 1})


def _unfused_nbits(fp32: Path, out: Path, **kwargs) -> None:
    base = out.with_name("unfused-attention.onnx")
    if not base.exists():
        _refuse(fp32, base, enable_attention=False)
    _nbits(base, out, **kwargs)


def _mha_nbits(fp32: Path, out: Path, **kwargs) -> None:
    base = out.with_name("mha.onnx")
    if not base.exists():
        _refuse(fp32, base, use_multi_head_attention=True)
    _nbits(base, out, **kwargs)


# name -> (transform or None for the float32 graph itself, run options)
CANDIDATES = {
    "fp32": (None, {}),
    "fp32-2x1": (None, {"sessions": 2}),  # two one-thread sessions, one batch each at a time
    "fp32-b4k": (None, {"tokens_per_batch": 4096}),
    "fp32-b16k": (None, {"tokens_per_batch": 16384, "max_texts": 256}),
    "int8-dyn-pc": (functools.partial(_dynamic), {}),
    "int8-dyn-pc-rr": (functools.partial(_dynamic, reduce_range=True), {}),
    "int8-dyn-pt": (functools.partial(_dynamic, per_channel=False), {}),
    "int8-dyn-pc-ffn": (functools.partial(_dynamic, ops=("MatMul",)), {}),
    "int8-qdq-minmax": (functools.partial(_static), {}),
    "int8-qdq-s8": (functools.partial(_static, activation="QInt8"), {}),
    "w8-b32-acc4": (functools.partial(_nbits, block=32, level=4), {}),
    "w8-b16-acc4": (functools.partial(_nbits, block=16, level=4), {}),
    "w8-b32-asym-acc4": (functools.partial(_nbits, block=32, level=4, symmetric=False), {}),
    "w8-b128-acc4": (functools.partial(_nbits, block=128, level=4), {}),
    "w8-b32-acc1": (functools.partial(_nbits, block=32, level=1), {}),  # weight-only, fp32 arithmetic
    "w4-b32-acc4": (functools.partial(_nbits, bits=4, block=32, level=4), {}),
    "w8-b32-acc4-unfused": (functools.partial(_unfused_nbits, block=32, level=4), {}),
    "w8-b32-acc4-mha": (functools.partial(_mha_nbits, block=32, level=4), {}),
    "fp32-unfused": (lambda fp32, out: _refuse(fp32, out, enable_attention=False), {}),
    "fp32-mha": (lambda fp32, out: _refuse(fp32, out, use_multi_head_attention=True), {}),
}


def fp32_graph(variant: str = "fp32") -> Path:
    from apps.llm.offline import embeddings, minilm_onnx

    return minilm_onnx.ensure_graph(embeddings.graph_dir(), variant, embeddings.minilm)


def candidate_graph(name: str) -> Path:
    from apps.llm.offline import minilm_onnx

    if name in minilm_onnx.VARIANTS:  # the runtime's own variants (LLM_LOCAL_EMBED_PRECISION), as shipped
        return fp32_graph(name)
    if name not in CANDIDATES and not name.startswith("excl"):
        raise SystemExit(f"unknown candidate {name!r}: one of {', '.join(CANDIDATES)}, excl<k> or a runtime variant")
    transform, _ = CANDIDATES.get(name, (None, {}))
    if name.startswith("excl"):  # excl<k>: int8 per-channel except the k most sensitive nodes
        transform = functools.partial(_dynamic, exclude=most_sensitive(int(name[4:].split("-")[0])))
    if transform is None:
        return fp32_graph()
    path = OUT / "graphs" / f"{name}.onnx"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        transform(fp32_graph(), path)
        print(f"built {name} in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return path


def most_sensitive(k: int) -> list[str]:
    found = json.loads((OUT / "sensitivity.json").read_text())
    return [node for node, _ in sorted(found.items(), key=lambda kv: -kv[1])[:k]]


class Runner:
    """Embeds texts with one candidate the portal's way (token ids, length buckets, mean pooling)."""

    def __init__(self, name: str, threads: int):
        from apps.llm.offline import minilm_onnx

        _, options = CANDIDATES.get(name, (None, {}))
        self.name, self.options = name, options
        path = candidate_graph(name)
        count = options.get("sessions", 1)
        self.sessions = [minilm_onnx.open_session(path, 1 if count > 1 else threads) for _ in range(count)]

    def embed(self, texts: list[str]) -> np.ndarray:
        from apps.llm.offline import embeddings, minilm_onnx

        encoded = embeddings.token_ids(texts)
        budget = {k: self.options[k] for k in ("tokens_per_batch", "max_texts") if k in self.options}
        batches = embeddings.length_batches([len(ids) for ids in encoded], **budget)
        out = np.zeros((len(texts), embeddings.DIMENSIONS), dtype=np.float32)
        if len(self.sessions) == 1:
            for batch in batches:
                out[batch] = minilm_onnx.run_batch(self.sessions[0], [encoded[i] for i in batch])
            return out
        pending = list(reversed(batches))
        lock = threading.Lock()

        def work(sess):
            while True:
                with lock:
                    if not pending:
                        return
                    batch = pending.pop()
                out[batch] = minilm_onnx.run_batch(sess, [encoded[i] for i in batch])

        workers = [threading.Thread(target=work, args=(s,)) for s in self.sessions]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return out


def folder(name: str) -> Path:
    raw = os.environ.get(COLLECTIONS[name])
    if not raw:
        raise SystemExit(f"Set {COLLECTIONS[name]} to the BEIR {name} folder.")
    return Path(raw)


def sample_texts(per_collection: int, queries: int = 30) -> list[str]:
    texts = []
    for name in COLLECTIONS:
        _, docs, qs, _ = _read_beir(folder(name), "test", per_collection)
        texts += docs + list(qs.values())[:queries]
    return texts


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def stage_cosine(names, args) -> dict:
    from apps.llm.offline import embeddings

    texts = sample_texts(args.sample)
    threads = embeddings.threads()
    ref = Runner("fp32", threads).embed(texts)
    out = {"texts": len(texts), "load": load()}
    for name in names:
        runner = Runner(name, threads)
        wall, cpu = time.perf_counter(), time.process_time()
        vectors = runner.embed(texts)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        cos = (ref * vectors).sum(axis=1)
        out[name] = {"cosine_mean": round(float(cos.mean()), 7), "cosine_min": round(float(cos.min()), 7),
                     "texts_per_cpu_s": round(len(texts) / cpu, 1), "load": load()}
        print(name, out[name], file=sys.stderr, flush=True)
    return out


def stage_sensitivity(names, args) -> dict:
    import onnx

    from apps.llm.offline import embeddings

    texts = sample_texts(args.sample // 3, queries=8)
    ref = Runner("fp32", embeddings.threads()).embed(texts)
    graph = onnx.load(str(fp32_graph()))
    nodes = [n.name for n in graph.graph.node if n.op_type in ("MatMul", "Attention")]
    path = OUT / "sensitivity.json"
    found = json.loads(path.read_text()) if path.exists() else {}
    for node in nodes:
        if node in found:
            continue
        target = OUT / "graphs" / "one-node.onnx"
        target.parent.mkdir(parents=True, exist_ok=True)
        _dynamic(fp32_graph(), target, include=[node])
        from apps.llm.offline import minilm_onnx

        run = functools.partial(minilm_onnx.run_batch, minilm_onnx.open_session(target, embeddings.threads()))
        vectors = embeddings.encode_ids(embeddings.token_ids(texts), run)
        found[node] = float(1 - (ref * vectors).sum(axis=1).mean())
        path.write_text(json.dumps(found, indent=1))
        print(node, f"{found[node]:.2e}", file=sys.stderr, flush=True)
    return {"texts": len(texts), "one_minus_cosine": dict(sorted(found.items(), key=lambda kv: -kv[1])),
            "load": load()}


def stage_speed(names, args) -> dict:
    from apps.llm.offline import embeddings

    _, texts, _, _ = _read_beir(folder("scifact"), "test", args.compare)
    threads = embeddings.threads()
    model = embeddings.minilm()
    embeddings.configure_threads()
    runs = {"plain": lambda t: model.encode(t, batch_size=32, normalize_embeddings=True)}
    runners = {name: Runner(name, threads) for name in ["fp32", *[n for n in names if n != "fp32"]]}
    for name, runner in runners.items():
        runs[name] = runner.embed
        runner.embed(texts[:8])  # warm
    rates = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name in runs:
            # float32 between every two candidates keeps the ratios honest under a moving load
            order = [name] if name in ("plain", "fp32") else [name, "fp32"]
            for each in order:
                before = os.getloadavg()[0]
                wall, cpu = time.perf_counter(), time.process_time()
                runs[each](texts)
                rates[each].append((len(texts) / (time.perf_counter() - wall),
                                    len(texts) / (time.process_time() - cpu), before))
        print({k: [tuple(round(x, 1) for x in r) for r in v] for k, v in rates.items()}, file=sys.stderr, flush=True)
    out = {"texts": len(texts), "threads": threads, "load_start": load()}
    for name, values in rates.items():
        best = max(values)
        out[name] = {"chunks_per_s": round(best[0], 2), "chunks_per_cpu_s": round(max(v[1] for v in values), 2),
                     "load_1min": round(best[2], 1), "runs": len(values)}
    for name in runs:
        if name != "plain":
            out[name]["ratio_wall"] = round(out[name]["chunks_per_s"] / out["plain"]["chunks_per_s"], 2)
            out[name]["ratio_per_cpu_s"] = round(out[name]["chunks_per_cpu_s"] / out["plain"]["chunks_per_cpu_s"], 2)
            out[name]["per_cpu_s_vs_fp32"] = round(out[name]["chunks_per_cpu_s"] / out["fp32"]["chunks_per_cpu_s"], 2)
    if args.queries:
        out["one_query_ms"] = query_times(names, args.queries)
    out["load_end"] = load()
    return out


def query_times(names, count) -> dict:
    from apps.llm.offline import embeddings

    lines = (folder("scifact") / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    queries = [json.loads(line)["text"] for line in lines if line][:count]
    model = embeddings.minilm()
    embeddings.prefer_threads(1)
    embeddings.configure_threads()
    runs = {"plain": lambda q: model.encode([q], normalize_embeddings=True)}
    for name in ["fp32", *[n for n in names if n != "fp32" and not CANDIDATES.get(n, (0, {}))[1]]]:
        runs[name] = Runner(name, 1).embed
    times = {name: [] for name in runs}
    for run in runs.values():
        run(["warm up"]) if run is not runs["plain"] else run("warm up")
    for _ in range(2):
        for name, run in runs.items():
            for query in queries:
                wall, cpu = time.perf_counter(), time.thread_time()
                run(query if name == "plain" else [query])
                times[name].append(((time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000))
    embeddings.prefer_threads(0)
    embeddings.configure_threads()
    out = {"queries": len(queries), "load": load()}
    for name, values in times.items():
        wall, cpu = np.asarray(values).T
        out[name] = {"wall_p50": round(float(np.percentile(wall, 50)), 2),
                     "wall_p95": round(float(np.percentile(wall, 95)), 2),
                     "cpu_p50": round(float(np.percentile(cpu, 50)), 2)}
    return out


def stage_ndcg(names, args) -> dict:
    from apps.llm.offline import embeddings

    threads = embeddings.threads()
    out = {"load_start": load()}
    for collection in args.collections.split(","):
        doc_ids, texts, queries, qrels = _read_beir(folder(collection), "test", 0)
        query_ids = list(queries)
        row = {"documents": len(texts), "queries": len(query_ids)}
        vectors = {}
        for name in ["fp32", *[n for n in names if n != "fp32"]]:
            cache = OUT / "vectors" / f"{collection}-{name}.npz"
            if cache.exists():
                saved = np.load(cache)
                docs, qs, rate = saved["docs"], saved["queries"], float(saved["rate"])
            else:
                runner = Runner(name, threads)
                started = time.perf_counter()
                docs = runner.embed(texts)
                rate = len(texts) / (time.perf_counter() - started)
                qs = np.concatenate([runner.embed([queries[q]]) for q in query_ids])  # one at a time
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.savez(cache, docs=docs, queries=qs, rate=rate)
            vectors[name] = (docs, qs)
            ndcg = ndcg_at_10(qs @ docs.T, doc_ids, query_ids, qrels)
            ref_docs, ref_qs = vectors["fp32"]
            cos = np.concatenate([(ref_docs * docs).sum(1), (ref_qs * qs).sum(1)])
            row[name] = {"ndcg@10": round(ndcg, 4), "cosine_mean": round(float(cos.mean()), 7),
                         "cosine_min": round(float(cos.min()), 6), "chunks_per_s": round(rate, 1), "load": load()}
            if name != "fp32":
                row[name]["difference"] = round(ndcg - row["fp32"]["ndcg@10"], 4)
            print(collection, name, row[name], file=sys.stderr, flush=True)
        out[collection] = row
    out["load_end"] = load()
    return out


def stage_noise(names, args) -> dict:
    """How fine the bar is: float32's saved vectors with isotropic noise at a given mean cosine, re-normalised;
    the spread of nDCG@10 differences over `--trials` draws per collection (no model run)."""
    rng = np.random.default_rng(0)
    out = {}
    for collection in args.collections.split(","):
        doc_ids, _, queries, qrels = _read_beir(folder(collection), "test", 0)
        saved = np.load(OUT / "vectors" / f"{collection}-fp32.npz")
        docs, qs = saved["docs"], saved["queries"]
        base = ndcg_at_10(qs @ docs.T, doc_ids, list(queries), qrels)
        row = {}
        for cosine in (0.99999, 0.99997, 0.9999, 0.9995):
            sigma = np.sqrt((1 / cosine**2 - 1) / docs.shape[1])  # E[cos] of x + N(0, s^2 I) for unit x

            def noisy(v, sigma=sigma):
                w = v + rng.normal(0, sigma, v.shape).astype(np.float32)
                return w / np.linalg.norm(w, axis=1, keepdims=True)

            diffs = np.asarray([ndcg_at_10(noisy(qs) @ noisy(docs).T, doc_ids, list(queries), qrels) - base
                                for _ in range(args.trials)])
            row[str(cosine)] = {"mean_abs": round(float(np.abs(diffs).mean()), 4),
                                "max_abs": round(float(np.abs(diffs).max()), 4),
                                "within_0.002": round(float((np.abs(diffs) <= 0.002).mean()), 2)}
        out[collection] = row
        print(collection, row, file=sys.stderr, flush=True)
    return out


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("stage", choices=["build", "cosine", "sensitivity", "speed", "ndcg", "noise"])
    parser.add_argument("--candidates", default="int8-dyn-pc,w8-b32-acc4")
    parser.add_argument("--sample", type=int, default=100)
    parser.add_argument("--compare", type=int, default=160)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--collections", default="med,cisi,scifact")
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    names = [n.strip() for n in args.candidates.split(",") if n.strip()]
    if args.stage == "build":
        result = {name: str(candidate_graph(name)) for name in names}
    else:
        result = globals()[f"stage_{args.stage}"](names, args)
    result = {"stage": args.stage, "candidates": names, "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              **result}
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "results.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(result) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
