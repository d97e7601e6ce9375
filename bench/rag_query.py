"""Query latency after the model (issue #18): per leg with and without the query embedding, the API against the
service call, and the same over a ~100,000-chunk collection of REAL text with REAL MiniLM embeddings.

    python -m bench.rag_query embed [--target 100000]   # resumable; writes .portal/bench_rag_query/
    python -m bench.rag_query [--queries 200] [--max-chunks N] [--reload]

`embed` splits the SciFact, CISI and MED corpora (SCIFACT_DIR, CISI_DIR, MED_DIR as for bench.rag_collections) into
sentence-size chunks (titles are chunks of their own), then, to reach the target without repeating any text,
adds two-sentence windows over the same documents. Every text is embedded with the portal's own embedder
(apps/llm/offline/embeddings.embed, whatever runtime it has on this branch) in shards of 2,000 that are
kept, so a run stopped on a loaded machine resumes where it stopped; the default run loads however many
shards exist (say so when it is below the target).

The default run:
- SciFact (imported with `rag_import_beir` into the bench database the first time): the 300 test queries,
  each leg timed through `apps.rag.retrieval`, the query embedding through the one call path (`calls.embed`,
  usage event and all) with the process's query LRU cleared so every query runs the model; the model's own
  share (`embeddings.embed` alone) separately, so it can be added to the model runtime's figure; the API
  (`POST /api/v1/rag/collections/{id}/search`) in process through Django's test client with a real token,
  against the service call the view makes.
- the real-text collection: hybrid with the embedding, as a member (real tenant subquery), p50/p95.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bench.rag_collections import beir_dirs
from bench.rag_common import BASE_DIR, load_average, log

SHARD = 2000
REAL_NAME = "real-text-100k"
SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=[A-Za-z0-9(\[])")


def work_dir() -> Path:
    path = BASE_DIR / ".portal" / "bench_rag_query"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sentences(text: str) -> list[str]:
    """Sentence-size pieces: split at sentence ends; a piece over 60 words is cut into ~40-word runs."""
    out = []
    for part in SENTENCE_END.split(text or ""):
        words = part.split()
        if len(words) < 3:
            continue
        if len(words) <= 60:
            out.append(" ".join(words))
        else:
            step = 40
            out.extend(" ".join(words[i:i + step]) for i in range(0, len(words), step) if len(words[i:i + step]) >= 3)
    return out


def corpus_chunks(target: int) -> list[tuple[str, str, str]]:
    """(collection, document id, text): every sentence of the three corpora first, then two-sentence windows
    until `target`; no text twice."""
    docs = []
    for folder in beir_dirs(None):
        name = folder.name
        with open(folder / "corpus.jsonl") as handle:
            for line in handle:
                row = json.loads(line)
                docs.append((name, str(row["_id"]), (row.get("title") or "").strip(), sentences(row.get("text", ""))))
    seen: set[str] = set()
    chunks: list[tuple[str, str, str]] = []

    def add(name, doc_id, text):
        if text and text not in seen:
            seen.add(text)
            chunks.append((name, doc_id, text))

    for name, doc_id, title, parts in docs:
        add(name, doc_id, title)
        for part in parts:
            add(name, doc_id, part)
    for name, doc_id, _title, parts in docs:
        for i in range(len(parts) - 1):
            if len(chunks) >= target:
                return chunks
            add(name, doc_id, parts[i] + " " + parts[i + 1])
    return chunks[:target]


def embed_corpus(target: int) -> None:
    """Embed the chunks shard by shard into work_dir(); shards already there are kept."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(BASE_DIR))
    from apps.llm.offline import embeddings

    chunks = corpus_chunks(target)
    out = work_dir()
    (out / "chunks.json").write_text(json.dumps(chunks))
    log(f"{len(chunks)} chunks; embedding in shards of {SHARD} into {out}")
    started = time.perf_counter()
    done = 0
    for index, start in enumerate(range(0, len(chunks), SHARD)):
        path = out / f"shard-{index:04d}.npy"
        if path.exists():
            continue
        t = time.perf_counter()
        texts = [text for _, _, text in chunks[start:start + SHARD]]
        vectors = np.asarray(embeddings.embed(texts).vectors, dtype=np.float32)
        np.save(path.with_suffix(".tmp.npy"), vectors)
        os.replace(path.with_suffix(".tmp.npy"), path)
        done += len(texts)
        log(f"  shard {index}: {len(texts)} chunks in {time.perf_counter() - t:.1f} s "
            f"({done / (time.perf_counter() - started):.1f} chunks/s overall, load {load_average()})")
    log("done")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("stage", nargs="?", default="run", choices=["embed", "run"])
    parser.add_argument("--target", type=int, default=100_000)
    args, _rest = parser.parse_known_args()
    if args.stage == "embed":
        embed_corpus(args.target)
        return
    raise SystemExit("run: not yet")


if __name__ == "__main__":
    main()
