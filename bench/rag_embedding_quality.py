"""Retrieval quality of the portal's MiniLM path against plain sentence-transformers, on BEIR folders.

    python -m bench.rag_embedding_quality --dir /data/med --dir /data/cisi [--runtimes onnx,int8,bf16] [--limit 0]

For each folder: embeds the corpus (title + text, as the indexer does) and the queries with plain
`SentenceTransformer.encode` (float32, batches of 32) and with `apps.llm.offline.embeddings.embed` (length
buckets) on each runtime of `--runtimes` (LLM_LOCAL_EMBED_PRECISION values; default: the process's own,
`auto`), ranks every document by exact cosine and reports nDCG@10 of each, the difference to plain, the
minimum and mean cosine between each runtime's vector and plain's for every text, and the throughput
(chunks/s and per CPU-second, same run). Exact search: this isolates the embeddings from HNSW and BM25.
Queries are embedded one at a time, as the query path does. Prints JSON. Graph candidates that are not (yet) a
runtime (other quantisation recipes, thread layouts): bench/rag_embedding_candidates.py (ADR 0123).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

BASE_DIR = Path(__file__).resolve().parent.parent


def _read_beir(folder: Path, split: str, limit: int) -> tuple[list[str], list[str], dict[str, str], dict]:
    docs = [json.loads(line) for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines() if line]
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        qid, did, rel = line.split("\t")[:3]
        if int(rel) > 0:
            qrels.setdefault(qid, {})[did] = int(rel)
    queries = {}
    for line in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        if line:
            q = json.loads(line)
            if q["_id"] in qrels:
                queries[q["_id"]] = q["text"]
    if limit:
        docs = docs[:limit]
    ids = [d["_id"] for d in docs]
    texts = ["\n".join(p for p in (d.get("title", ""), d["text"]) if p) for d in docs]
    return ids, texts, queries, qrels


def ndcg_at_10(scores: np.ndarray, doc_ids: list[str], query_ids: list[str], qrels: dict) -> float:
    total = 0.0
    for row, qid in enumerate(query_ids):
        top = np.argsort(-scores[row], kind="stable")[:10]
        dcg = sum(qrels[qid].get(doc_ids[j], 0) / math.log2(rank + 2) for rank, j in enumerate(top))
        ideal = sorted(qrels[qid].values(), reverse=True)[:10]
        idcg = sum(r / math.log2(rank + 2) for rank, r in enumerate(ideal))
        total += dcg / idcg if idcg else 0.0
    return total / max(len(query_ids), 1)


def _timed(fn, texts):
    started, cpu = time.perf_counter(), time.process_time()
    vectors = np.asarray(fn(texts), dtype=np.float32)
    return vectors, len(texts) / (time.perf_counter() - started), len(texts) / (time.process_time() - cpu)


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", action="append", default=[], help="a BEIR folder (repeat for several)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=0, help="only the first N documents (0: all)")
    parser.add_argument("--runtimes", default="auto", help="LLM_LOCAL_EMBED_PRECISION values, comma-separated")
    args = parser.parse_args()
    folders = [Path(d) for d in args.dir]
    if not folders:  # `make bench`: the folders bench/rag_collections.py reads too
        folders = [Path(os.environ[name]) for name in ("MED_DIR", "CISI_DIR", "SCIFACT_DIR") if os.environ.get(name)]
    if not folders:
        raise SystemExit("Give --dir (a BEIR folder: corpus.jsonl, queries.jsonl, qrels/) or set SCIFACT_DIR "
                         "(and CISI_DIR, MED_DIR).")
    sys.path.insert(0, str(BASE_DIR))
    from apps.llm.offline import embeddings

    model = embeddings.minilm()

    def plain(texts):
        return model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)

    runtimes = [embeddings.use_precision(r.strip()) for r in args.runtimes.split(",") if r.strip()]
    out = {"runtimes": runtimes, "threads": embeddings.threads(), "load_average_start": os.getloadavg(),
           "collections": {}}
    for folder in folders:
        doc_ids, texts, queries, qrels = _read_beir(folder, args.split, args.limit)
        query_ids = list(queries)
        q_texts = [queries[q] for q in query_ids]
        print(f"{folder.name}: {len(texts)} documents, {len(query_ids)} queries", file=sys.stderr, flush=True)
        d_plain, plain_rate, plain_cpu = _timed(plain, texts)
        q_plain = plain(q_texts)
        n_plain = ndcg_at_10(q_plain @ d_plain.T, doc_ids, query_ids, qrels)
        row = {"documents": len(texts), "queries": len(query_ids), "ndcg@10_plain": round(n_plain, 4),
               "chunks_per_s_plain": round(plain_rate, 2), "chunks_per_cpu_s_plain": round(plain_cpu, 2)}
        for runtime in runtimes:
            embeddings.use_precision(runtime)
            d_ours, rate, cpu_rate = _timed(lambda t: embeddings.embed(t).vectors, texts)
            q_ours = np.asarray([embeddings._encode([q]).vectors[0] for q in q_texts], dtype=np.float32)
            cos = np.concatenate([(d_plain * d_ours).sum(1), (q_plain * q_ours).sum(1)])
            n_ours = ndcg_at_10(q_ours @ d_ours.T, doc_ids, query_ids, qrels)
            row[runtime] = {"ndcg@10": round(n_ours, 4), "difference": round(n_ours - n_plain, 4),
                            "cosine_min": round(float(cos.min()), 6), "cosine_mean": round(float(cos.mean()), 6),
                            "chunks_per_s": round(rate, 2), "chunks_per_cpu_s": round(cpu_rate, 2),
                            "ratio_wall": round(rate / plain_rate, 2), "ratio_per_cpu_s": round(cpu_rate / plain_cpu, 2)}
        out["collections"][folder.name] = row
        print(json.dumps(row), file=sys.stderr, flush=True)
    out["load_average_end"] = os.getloadavg()
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
