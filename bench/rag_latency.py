"""Hybrid query latency over a 100,000-chunk collection, and HNSW recall@10 against exact search.

    python -m bench.rag_latency [--chunks 100000] [--queries 200] [--rebuild]

The chunks are SYNTHETIC (embedding 100k real texts with MiniLM would take hours on 2 cores): text drawn from a
Zipf-distributed vocabulary of 30,000 made-up words (40-120 words a chunk), vectors from a mixture of 500
Gaussian clusters normalised to unit length (real embeddings are clustered; uniform random vectors would be
an unrealistically hard case for HNSW). The postings come from PostgreSQL's english parser like real ones; the
HNSW index is built once after loading (m=16, ef_construction=64), and its build time is reported.

Queries: 3-6 words sampled from the vocabulary's middle band, each with a vector near a random chunk's. Timed
per step through the portal's own functions (bm25_search, vector_search, fusion and hydrate via retrieve with
the query vector given): the figures exclude the query embedding. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import random
import statistics
import time

import numpy as np

from bench.rag_common import load_average, log, setup

VOCABULARY = 30_000
CLUSTERS = 500
DIMS = 384
NAME = "synthetic-100k"


def _words(rng: random.Random) -> list[str]:
    syllables = ["ka", "lo", "mi", "ter", "van", "sul", "pre", "dor", "bi", "nex", "qua", "ros", "tel", "fi", "gam",
                 "hu", "jor", "ple", "stra", "wen", "zo", "cri", "mun", "dal"]
    words = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def build(collection, n_chunks: int, seed: int = 7) -> dict:
    from django.db import connection

    from apps.rag.config import DEFAULT_B, DEFAULT_K1
    from apps.rag.models import Collection, Document
    from apps.rag.services import create_hnsw_index, drop_hnsw_index

    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    vocab = _words(rng)
    ranks = np.arange(1, VOCABULARY + 1)
    zipf = 1 / ranks ** 1.07
    zipf /= zipf.sum()
    centroids = np_rng.normal(size=(CLUSTERS, DIMS)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    timings = {}
    started = time.perf_counter()
    drop_hnsw_index(collection)
    per_doc = 10
    docs = [Document(collection=collection, source_name=f"synthetic-{i:06d}", format="txt", content=b"",
                     content_hash=f"{i:064d}", status="indexed", chunk_count=per_doc,
                     metadata={"group": i % 100})
            for i in range(math.ceil(n_chunks / per_doc))]
    Document.objects.bulk_create(docs, batch_size=2000)
    doc_ids = list(Document.objects.filter(collection=collection).order_by("pk").values_list("pk", flat=True))
    log(f"  {len(doc_ids)} documents")
    batch = 10_000
    with connection.cursor() as cursor:
        for start in range(0, n_chunks, batch):
            size = min(batch, n_chunks - start)
            lengths = np_rng.integers(40, 121, size=size)
            word_ids = np_rng.choice(VOCABULARY, size=int(lengths.sum()), p=zipf)
            cluster = np_rng.integers(0, CLUSTERS, size=size)
            vectors = centroids[cluster] + np_rng.normal(scale=0.045, size=(size, DIMS)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            buffer = io.StringIO()
            cursor_w = 0
            for i in range(size):
                n = start + i
                text = " ".join(vocab[w] for w in word_ids[cursor_w:cursor_w + lengths[i]])
                cursor_w += lengths[i]
                doc = doc_ids[n // per_doc]
                vec = "[" + ",".join(f"{x:.6f}" for x in vectors[i]) + "]"
                buffer.write(f"{collection.pk}\t{doc}\t{n % per_doc}\t\t{text}\t0\t{len(text)}\t{lengths[i]}\t0\t"
                             f'{{"group": {(n // per_doc) % 100}}}\t{vec}\n')
            buffer.seek(0)
            with cursor.cursor.copy("COPY rag_chunk (collection_id, document_id, position, heading_path, text, "
                                    "char_start, char_end, token_count, bm25_length, metadata, embedding) "
                                    "FROM STDIN") as copy:
                copy.write(buffer.getvalue())
            log(f"  {start + size} chunks loaded")
        timings["load_chunks_s"] = round(time.perf_counter() - started, 1)
        t = time.perf_counter()
        ids = [row[0] for row in cursor.execute(
            "SELECT id FROM rag_chunk WHERE collection_id = %s ORDER BY id", [collection.pk]).fetchall()]
        for start in range(0, len(ids), 20_000):
            lo, hi = ids[start], ids[min(start + 20_000, len(ids)) - 1]
            cursor.execute("""
                WITH lex AS (
                    SELECT c.id AS chunk_id, u.lexeme, coalesce(array_length(u.positions, 1), 1) AS tf
                    FROM rag_chunk c, unnest(to_tsvector('english', c.text)) u
                    WHERE c.collection_id = %s AND c.id BETWEEN %s AND %s
                ), lens AS (SELECT chunk_id, sum(tf)::int AS dl FROM lex GROUP BY chunk_id),
                upd AS (UPDATE rag_chunk c SET bm25_length = lens.dl FROM lens WHERE c.id = lens.chunk_id)
                INSERT INTO rag_posting (chunk_id, collection_id, term, tf, dl, impact)
                SELECT lex.chunk_id, %s, lex.lexeme, lex.tf, lens.dl,
                       lex.tf * (%s + 1) / (lex.tf + %s * (1 - %s + %s * lens.dl / (SELECT avg(dl) FROM lens)))
                FROM lex JOIN lens USING (chunk_id)
            """, [collection.pk, lo, hi, collection.pk, DEFAULT_K1, DEFAULT_K1, DEFAULT_B, DEFAULT_B])
            log(f"  postings for {min(start + 20_000, len(ids))} chunks")
        timings["postings_s"] = round(time.perf_counter() - t, 1)
        total = cursor.execute("SELECT count(*), coalesce(sum(bm25_length), 0) FROM rag_chunk WHERE collection_id = %s",
                               [collection.pk]).fetchone()
        Collection.objects.filter(pk=collection.pk).update(chunk_count=total[0], token_total=total[1])
        cursor.execute("SELECT count(*) FROM rag_posting WHERE collection_id = %s", [collection.pk])
        timings["postings"] = cursor.fetchone()[0]
        cursor.execute("ANALYZE rag_chunk")
        cursor.execute("ANALYZE rag_posting")
        t = time.perf_counter()
        cursor.execute("SET maintenance_work_mem = '1GB'")
        collection.refresh_from_db()
        create_hnsw_index(collection)
        timings["hnsw_build_s"] = round(time.perf_counter() - t, 1)
    timings["total_s"] = round(time.perf_counter() - started, 1)
    return timings


def _timed_ms(call, queries) -> list[float]:
    """Milliseconds of `call(query, vector)` for each query, one after the other."""
    samples = []
    for q, v in queries:
        t = time.perf_counter()
        call(q, v)
        samples.append((time.perf_counter() - t) * 1000)
    return samples


def _p50_p95(samples: list[float]) -> dict:
    return {"p50": round(statistics.median(samples), 2),
            "p95": round(sorted(samples)[int(0.95 * len(samples)) - 1], 2)}


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    setup()
    from apps.accounts.models import Team
    from apps.core.request_context import acting_as
    from apps.rag import retrieval
    from apps.rag.config import RetrievalConfig
    from apps.rag.models import Chunk, Collection
    from apps.rag.services import collection_create, collection_delete

    out: dict = {"load_average_start": load_average(), "synthetic": True}
    collection = Collection.objects.filter(name=NAME, team__slug="search").first()
    with acting_as(None):
        if collection is not None and (args.rebuild or collection.chunk_count != args.chunks):
            collection_delete(collection=collection)
            collection = None
        if collection is None:
            log(f"building {args.chunks} synthetic chunks ...")
            collection = collection_create(team=Team.objects.get(slug="search"), name=NAME,
                                           embedding_model="local-minilm", chunking={"strategy": "whole"})
            out["build"] = build(collection, args.chunks)
            collection.refresh_from_db()
    out["chunks"] = collection.chunk_count
    rng = random.Random(11)
    vocab = _words(random.Random(7))
    band = vocab[200:8000]  # neither the commonest words nor the rarest: typical query terms
    sample_ids = list(Chunk.objects.filter(collection=collection).values_list("pk", flat=True)[:: max(1, args.chunks // 2000)])
    queries = []
    for _ in range(args.queries):
        base = np.asarray(Chunk.objects.get(pk=rng.choice(sample_ids)).embedding, dtype=np.float32)
        vec = base + np.random.default_rng(rng.randint(0, 10**6)).normal(scale=0.03, size=DIMS).astype(np.float32)
        vec /= np.linalg.norm(vec)
        queries.append((" ".join(rng.choice(band) for _ in range(rng.randint(3, 6))), vec.tolist()))
    config = RetrievalConfig.from_dict(collection.retrieval).replace(k=10)
    actor = retrieval.SYSTEM
    for q, v in queries[:5]:  # warm the caches
        retrieval.retrieve(collection=collection, query=q, actor=actor, config=config, query_vector=v)
    steps = {"bm25_ms": [], "vector_ms": [], "fusion_ms": [], "fetch_ms": [], "total_ms": []}
    for q, v in queries:
        result = retrieval.retrieve(collection=collection, query=q, actor=actor, config=config, query_vector=v,
                                    explain=False)
        for name in steps:
            steps[name].append(result.timings.get(name, 0.0))
    out["hybrid_latency_ms"] = {name: _p50_p95(s) for name, s in steps.items()}
    # Queries that also hold one of the 200 commonest words (df in the tens of thousands): the case top-k
    # pruning is for (each term reads at most RAG_BM25_TERM_POSTINGS postings).
    common = _timed_ms(lambda q, v: retrieval.retrieve(
        collection=collection, query=f"{q} {rng.choice(vocab[:200])}", actor=actor, config=config, query_vector=v,
        explain=False), queries[:100])
    out["hybrid_total_with_a_common_word_ms"] = _p50_p95(common)
    exact_common = _timed_ms(lambda q, _v: retrieval.bm25_search(
        collection=collection, query=f"{q} {rng.choice(vocab[:200])}", limit=100, actor=actor, k1=config.k1,
        b=config.b, term_postings=0), queries[:30])
    out["bm25_without_pruning_with_a_common_word_ms"] = {"p50": round(statistics.median(exact_common), 2)}
    # The worst case for pruning: every query word among the 20 commonest (df of tens of thousands each).
    from apps.rag.models import TermStat

    commonest = list(TermStat.objects.filter(collection_id=collection.pk).order_by("-df")
                     .values_list("term", flat=True)[:20])
    worst = {"pruned_ms": [], "exact_ms": [], "overlap@10": []}
    for _ in range(10):
        q = " ".join(rng.sample(commonest, 5))
        t = time.perf_counter()
        pruned = retrieval.bm25_search(collection=collection, query=q, limit=100, actor=actor, k1=config.k1,
                                       b=config.b)
        worst["pruned_ms"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        exact = retrieval.bm25_search(collection=collection, query=q, limit=100, actor=actor, k1=config.k1,
                                      b=config.b, term_postings=0)
        worst["exact_ms"].append((time.perf_counter() - t) * 1000)
        worst["overlap@10"].append(len({h.chunk_id for h in pruned[:10]} & {h.chunk_id for h in exact[:10]}) / 10)
    out["bm25_five_commonest_words"] = {"pruned_p50_ms": round(statistics.median(worst["pruned_ms"]), 2),
                                        "exact_p50_ms": round(statistics.median(worst["exact_ms"]), 2),
                                        "top10_overlap_with_exact": round(statistics.fmean(worst["overlap@10"]), 3)}
    # What the playground does on top: highlight the matched words, list the lexemes.
    out["hybrid_total_with_highlighting_ms"] = _p50_p95(_timed_ms(lambda q, v: retrieval.retrieve(
        collection=collection, query=q, actor=actor, config=config, query_vector=v), queries[:100]))
    out["config"] = {"candidates": config.candidates, "k": config.k, "ef_search": config.ef_search,
                     "fusion": config.fusion}
    # A member's query: the tenant filter is a real permission subquery, not the SYSTEM shortcut.
    from django.contrib.auth import get_user_model

    erin = get_user_model().objects.get(username="erin")
    out["hybrid_total_as_member_ms"] = _p50_p95(_timed_ms(lambda q, v: retrieval.retrieve(
        collection=collection, query=q, actor=erin, config=config, query_vector=v, explain=False), queries[:100]))
    filtered_config = config.replace(filters={"group": 7})
    out["hybrid_total_with_1pct_filter_ms"] = _p50_p95(_timed_ms(lambda q, v: retrieval.retrieve(
        collection=collection, query=q, actor=actor, config=filtered_config, query_vector=v, explain=False),
        queries[:50]))
    recall = {}
    exact_hits = [retrieval.vector_search(collection=collection, vector=v, limit=10, actor=actor, exact=True)
                  for _, v in queries[:100]]
    t = time.perf_counter()
    for ef in (10, 40, 100, 200):
        scores = []
        for (_, v), exact in zip(queries[:100], exact_hits, strict=True):
            approx = retrieval.vector_search(collection=collection, vector=v, limit=10, actor=actor, ef_search=ef)
            scores.append(len({h.chunk_id for h in approx} & {h.chunk_id for h in exact}) / 10)
        recall[str(ef)] = round(statistics.fmean(scores), 4)
    out["hnsw_recall@10_by_ef_search"] = recall
    out["load_average_end"] = load_average()
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
