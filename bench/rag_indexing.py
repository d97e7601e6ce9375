"""Indexing throughput with the local MiniLM, and a re-index of the unchanged corpus.

    python -m bench.rag_indexing [--docs 1000] [--chunking whole|recursive]

Imports the first N SciFact abstracts into a fresh collection through the portal's own path
(documents_upsert -> indexing_job_run: parse, chunk, embed in batches through apps.llm.calls.embed, write
chunks and postings), then imports the same corpus again: every document is compared by content hash and
skipped, nothing is queued. Reports chunks per second for the first index and the speed-up of the second.
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
    args = parser.parse_args()
    setup()
    from apps.accounts.models import Team
    from apps.llm.offline.embeddings import minilm
    from apps.rag.indexing import embed_batch_size, indexing_job_run
    from apps.rag.models import Collection, IndexingJob
    from apps.rag.services import collection_create, collection_delete, corpus_items, documents_upsert
    from portal.request_context import acting_as

    name = f"indexing-bench-{args.chunking}"
    items = corpus_items((scifact_dir() / "corpus.jsonl").read_text(encoding="utf-8"))[: args.docs]
    out = {"documents": len(items), "chunking": args.chunking, "embed_batch": embed_batch_size(),
           "load_average_start": load_average()}
    t = time.perf_counter()
    minilm()  # loaded once per process; not part of the throughput
    out["model_load_s"] = round(time.perf_counter() - t, 1)
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


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
