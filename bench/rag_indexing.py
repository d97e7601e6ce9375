"""Indexing throughput with the local MiniLM, and a re-index of the unchanged corpus.

    python -m bench.rag_indexing [--docs 1000] [--chunking whole|recursive] [--compare N] [--keep]

Imports the first N SciFact abstracts into a fresh collection through the portal's own path
(documents_upsert -> indexing_job_run: parse, chunk, embed in batches through apps.llm.calls.embed, write
chunks and postings), then imports the same corpus again: every document is compared by content hash and
skipped, nothing is queued. Reports chunks per second for the first index and the speed-up of the second.

Side by side in the same run (issue #18, ADR 0044): the model alone on the first `--compare` texts (default
200), plain `SentenceTransformer.encode` (float32, batches of 32) against the portal's path
(`apps.llm.offline.embeddings.embed`: length buckets, bf16 autocast where the CPU has it), alternated twice,
as chunks/s and chunks per CPU-second (the machine is shared: the ratio is the figure that travels).
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
    if args.compare:
        out["model_only"] = compare_plain(items[: args.compare])
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


def compare_plain(items: list) -> dict:
    """chunks/s of plain sentence-transformers and of the portal's embedding path on the same texts."""
    import os

    import numpy as np

    from apps.llm.offline import embeddings

    texts = ["\n".join(p for p in (item.title, item.content.decode("utf-8")) if p) for item in items]
    model = embeddings.minilm()
    runs = {"plain_sentence_transformers": lambda: model.encode(texts, batch_size=32, normalize_embeddings=True),
            "portal": lambda: embeddings.embed(texts).vectors}
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    vectors = {}
    for _ in range(2):  # alternated, so both see the same load
        for name, run in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            vectors[name] = np.asarray(run(), dtype=np.float32)
            rates[name].append((len(texts) / (time.perf_counter() - wall), len(texts) / (time.process_time() - cpu)))
    best = {name: max(r[0] for r in values) for name, values in rates.items()}
    cosine = (vectors["plain_sentence_transformers"] * vectors["portal"]).sum(axis=1)
    return {"texts": len(texts), "precision": embeddings.precision(), "torch_threads": embeddings.configure_threads(),
            **{f"{name}_chunks_per_s": round(best[name], 2) for name in runs},
            **{f"{name}_chunks_per_cpu_s": round(max(r[1] for r in rates[name]), 2) for name in runs},
            "ratio": round(best["portal"] / best["plain_sentence_transformers"], 2),
            "cosine_min": round(float(cosine.min()), 6), "load_average": str(os.getloadavg())}


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
