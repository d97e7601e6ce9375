"""Indexing throughput with the local MiniLM, and a re-index of the unchanged corpus.

    python -m bench.rag_indexing [--docs 1000] [--chunking whole|recursive] [--compare N] [--keep]

Imports the first N SciFact abstracts into a fresh collection through the portal's own path
(documents_upsert -> indexing_job_run: parse, chunk, embed in batches through apps.llm.calls.embed, write
chunks and postings), then imports the same corpus again: every document is compared by content hash and
skipped, nothing is queued. Reports chunks per second for the first index and the speed-up of the second.

Side by side in the same run (issue #18, ADR 0044, 0045): the model alone on the first `--compare` texts
(default 200), plain `SentenceTransformer.encode` (float32, batches of 32) against the portal's path
(`apps.llm.offline.embeddings.embed`: length buckets) on each runtime of `--runtimes` (default: onnx, the
fused ONNX Runtime graph; int8, its MatMulNBits graph (ADR 0123); bf16, torch autocast), alternated twice, as chunks/s and chunks per CPU-second (the
machine is shared: the ratio is the figure that travels); then the model time of one short query (the first
`--queries` SciFact queries, one thread as in a web process, the query cache bypassed), p50/p95 wall and CPU.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

from bench.rag_common import load_average, log, scifact_dir, setup


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--chunking", default="whole")
    parser.add_argument("--compare", type=int, default=200, help="texts for the model-only comparison (0: skip)")
    parser.add_argument("--runtimes", default="onnx,int8,bf16", help="LLM_LOCAL_EMBED_PRECISION values to compare")
    parser.add_argument("--queries", type=int, default=100, help="queries for the one-query model time (0: skip)")
    args = parser.parse_args()
    setup()
    from apps.accounts.models import Team
    from apps.core.request_context import acting_as
    from apps.llm.offline.embeddings import minilm
    from apps.rag.indexing import embed_batch_size, indexing_job_run
    from apps.rag.models import Collection, IndexingJob
    from apps.rag.services import collection_create, collection_delete, corpus_items, documents_upsert

    name = f"indexing-bench-{args.chunking}"
    items = corpus_items((scifact_dir() / "corpus.jsonl").read_text(encoding="utf-8"))[: args.docs]
    out = {"documents": len(items), "chunking": args.chunking, "embed_batch": embed_batch_size(),
           "load_average_start": load_average()}
    t = time.perf_counter()
    minilm()  # loaded once per process; not part of the throughput
    out["model_load_s"] = round(time.perf_counter() - t, 1)
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    if args.compare:
        out["model_only"] = compare_plain(items[: args.compare], runtimes)
    if args.queries:
        out["query_model_ms"] = query_model_time(runtimes, args.queries)
    with acting_as(None):
        old = Collection.objects.filter(name=name, team__slug="search").first()
        if old is not None:
            collection_delete(collection=old)
        collection = collection_create(team=Team.objects.get(slug="search"), name=name,
                                       embedding_model="local-minilm", chunking={"strategy": args.chunking})
        log(f"first index of {len(items)} documents ...")
        started = time.perf_counter()
        result = documents_upsert(collection=collection, items=items, trigger="bench", queue_task=False)
        indexing_job_run(result.job.pk)
        first = time.perf_counter() - started
        job = IndexingJob.objects.get(pk=result.job.pk)
        out["first_index"] = {"seconds": round(first, 2), "chunks": job.chunks_written,
                              "chunks_per_second": round(job.chunks_written / first, 2),
                              "documents_per_second": round(len(items) / first, 2), "status": job.status}
        log("re-index of the unchanged corpus ...")
        started = time.perf_counter()
        again = documents_upsert(collection=collection, items=items, trigger="bench", queue_task=False)
        second = time.perf_counter() - started
        out["reindex_unchanged"] = {"seconds": round(second, 3), "unchanged": len(again.unchanged),
                                    "queued": 0 if again.job is None else again.job.progress_total,
                                    "speedup": round(first / second, 1)}
    out["load_average_end"] = load_average()
    return out


def _restore_runtime() -> None:
    from django.conf import settings

    from apps.llm.offline import embeddings

    embeddings.use_precision(settings.LLM_LOCAL_EMBED_PRECISION)


def compare_plain(items: list, runtimes: list[str]) -> dict:
    """chunks/s of plain sentence-transformers and of the portal's embedding path (each runtime), same texts."""
    import os

    import numpy as np

    from apps.llm.offline import embeddings

    texts = ["\n".join(p for p in (item.title, item.content.decode("utf-8")) if p) for item in items]
    model = embeddings.minilm()
    runs = {"plain_sentence_transformers": lambda: model.encode(texts, batch_size=32, normalize_embeddings=True)}
    for runtime in runtimes:
        runs[runtime] = lambda runtime=runtime: (embeddings.use_precision(runtime), embeddings.embed(texts).vectors)[1]
        runs[runtime]()  # an ONNX graph is built or loaded once, outside the timing
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    vectors = {}
    for _ in range(2):  # alternated, so all see the same load
        for name, run in runs.items():
            embeddings.configure_threads()
            wall, cpu = time.perf_counter(), time.process_time()
            vectors[name] = np.asarray(run(), dtype=np.float32)
            rates[name].append((len(texts) / (time.perf_counter() - wall), len(texts) / (time.process_time() - cpu)))
    _restore_runtime()
    plain = "plain_sentence_transformers"
    best = {name: max(r[0] for r in values) for name, values in rates.items()}
    per_cpu = {name: max(r[1] for r in values) for name, values in rates.items()}
    return {"texts": len(texts), "threads": embeddings.threads(),
            **{f"{name}_chunks_per_s": round(best[name], 2) for name in runs},
            **{f"{name}_chunks_per_cpu_s": round(per_cpu[name], 2) for name in runs},
            **{f"{name}_ratio_wall": round(best[name] / best[plain], 2) for name in runtimes},
            **{f"{name}_ratio_per_cpu_s": round(per_cpu[name] / per_cpu[plain], 2) for name in runtimes},
            **{f"{name}_cosine_min": round(float((vectors[plain] * vectors[name]).sum(axis=1).min()), 6)
               for name in runtimes},
            "load_average": str(os.getloadavg())}


def query_model_time(runtimes: list[str], count: int) -> dict:
    """The model's time for one query at a time with one thread (a web process), p50/p95 in ms, wall and CPU."""
    import json

    import numpy as np

    from apps.llm.offline import embeddings

    lines = (scifact_dir() / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    queries = [json.loads(line)["text"] for line in lines if line][:count]
    model = embeddings.minilm()
    embeddings.prefer_threads(1)
    runs = {"plain_sentence_transformers": lambda q: model.encode([q], normalize_embeddings=True)}
    for runtime in runtimes:
        runs[runtime] = lambda q, runtime=runtime: (embeddings.use_precision(runtime), embeddings._encode([q]))
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for run in runs.values():
        embeddings.configure_threads()
        run("warm up")
    for _ in range(2):
        for name, run in runs.items():
            embeddings.configure_threads()
            for query in queries:
                wall, cpu = time.perf_counter(), time.thread_time()
                run(query)
                times[name].append(((time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000))
    embeddings.prefer_threads(0)
    embeddings.configure_threads()
    _restore_runtime()
    out = {"queries": len(queries), "mean_words": round(sum(len(q.split()) for q in queries) / len(queries), 1)}
    for name, values in times.items():
        wall, cpu = np.asarray(values).T
        out[name] = {"wall_p50": round(float(np.percentile(wall, 50)), 2),
                     "wall_p95": round(float(np.percentile(wall, 95)), 2),
                     "cpu_p50": round(float(np.percentile(cpu, 50)), 2),
                     "cpu_p95": round(float(np.percentile(cpu, 95)), 2)}
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
