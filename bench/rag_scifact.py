"""SciFact through the portal's own import, indexing and retrieval code: tune on train, report on test.

    python -m bench.rag_scifact            # imports + indexes SciFact if needed (~10-20 min on 2 cores), tunes, reports
    python -m bench.rag_scifact --no-tune  # test figures with the shipped defaults only

Tuning (train split only): BM25 k1 x b grid; then, on the train legs at the chosen k1/b, RRF constant and leg
weights, and the convex combination's alpha. Reported on test: each leg, plain RRF (k=60, equal weights), the
tuned RRF and the tuned convex fusion, plus HNSW recall@10 against exact search at the shipped ef_search.
Prints one JSON object (progress goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from bench.rag_common import load_average, log, scifact_dir, setup

K1_GRID = (0.6, 0.9, 1.2, 1.5)
B_GRID = (0.3, 0.4, 0.5, 0.6, 0.75)
RRF_K_GRID = (1, 5, 10, 20, 40, 60, 100)
VECTOR_WEIGHTS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
ALPHAS = tuple(round(0.05 * i, 2) for i in range(21))


def ensure_collection(name: str = "scifact"):
    from django.core.management import call_command

    from apps.rag.models import Collection

    collection = Collection.objects.filter(name=name, team__slug="search").first()
    if collection is None or collection.chunk_count < 5183:
        log("importing and indexing SciFact (5,183 abstracts) ...")
        call_command("rag_import_beir", collection=name, team="search", dir=str(scifact_dir()))
        collection = Collection.objects.get(name=name, team__slug="search")
    return collection


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-tune", action="store_true")
    args = parser.parse_args()
    setup()
    from apps.rag import retrieval
    from apps.rag.config import RetrievalConfig
    from apps.rag.evaluation import leg_runs, load_beir_dir, score_runs, source_names

    collection = ensure_collection()
    source_of = source_names(collection)
    base = RetrievalConfig.from_dict(collection.retrieval)
    train = load_beir_dir(scifact_dir(), "train")
    test = load_beir_dir(scifact_dir(), "test")
    out: dict = {"load_average_start": load_average(), "collection_chunks": collection.chunk_count,
                 "train_queries": len(train), "test_queries": len(test)}

    def ndcg(queries, runs, config, leg):
        return score_runs(queries, runs, config, source_of, legs=(leg,)).metrics[leg]["ndcg@10"]

    started = time.perf_counter()
    log("embedding the queries ...")
    train_vectors = [v for i in range(0, len(train), 64)
                     for v in retrieval.embed_query(collection, [q.text for q in train[i:i + 64]], feature="bench")]
    test_vectors = [v for i in range(0, len(test), 64)
                    for v in retrieval.embed_query(collection, [q.text for q in test[i:i + 64]], feature="bench")]
    chosen = {"k1": base.k1, "b": base.b}
    if not args.no_tune:
        grid = {}
        for k1 in K1_GRID:
            for b in B_GRID:
                config = base.replace(k1=k1, b=b)
                runs, _ = leg_runs(collection, train, config, legs=("bm25",), pool=100)
                grid[f"k1={k1},b={b}"] = ndcg(train, runs, config, "bm25")
                log(f"  train BM25 k1={k1} b={b}: nDCG@10 {grid[f'k1={k1},b={b}']:.4f}")
        best = max(grid, key=grid.get)
        chosen = {kv.split("=")[0]: float(kv.split("=")[1]) for kv in best.split(",")}
        out["train_bm25_grid"] = grid
    tuned = base.replace(**chosen)
    out["bm25_params"] = chosen
    log("train legs at the chosen k1/b ...")
    train_runs, _ = leg_runs(collection, train, tuned, vectors=train_vectors, pool=tuned.candidates)
    fusion = {"rrf": None, "convex": None}
    if not args.no_tune:
        rrf_scores = {}
        for k in RRF_K_GRID:
            for w in VECTOR_WEIGHTS:
                config = tuned.replace(fusion="rrf", rrf_k=k, bm25_weight=1.0, vector_weight=w)
                rrf_scores[(k, w)] = ndcg(train, train_runs, config, "hybrid")
        (best_k, best_w), best_rrf = max(rrf_scores.items(), key=lambda kv: kv[1])
        convex_scores = {a: ndcg(train, train_runs, tuned.replace(fusion="convex", alpha=a), "hybrid") for a in ALPHAS}
        best_alpha = max(convex_scores, key=convex_scores.get)
        fusion = {"rrf": {"rrf_k": best_k, "vector_weight": best_w, "train_ndcg@10": round(best_rrf, 4)},
                  "convex": {"alpha": best_alpha, "train_ndcg@10": round(convex_scores[best_alpha], 4)},
                  "train_plain_rrf_ndcg@10": round(rrf_scores[(60, 1.0)], 4),
                  "train_convex_by_alpha": {str(a): round(s, 4) for a, s in convex_scores.items()}}
        out["train_fusion"] = fusion
    train_outcome = score_runs(train, train_runs, tuned, source_of)
    out["train"] = train_outcome.metrics

    log("test ...")
    test_runs, samples = leg_runs(collection, test, tuned, vectors=test_vectors, pool=tuned.candidates)
    variants = {"shipped": tuned, "plain_rrf": tuned.replace(fusion="rrf", rrf_k=60, bm25_weight=1.0, vector_weight=1.0)}
    if fusion["rrf"]:
        variants["tuned_rrf"] = tuned.replace(fusion="rrf", rrf_k=fusion["rrf"]["rrf_k"], bm25_weight=1.0,
                                              vector_weight=fusion["rrf"]["vector_weight"])
        variants["tuned_convex"] = tuned.replace(fusion="convex", alpha=fusion["convex"]["alpha"])
    test_report = {}
    for name, config in variants.items():
        metrics = score_runs(test, test_runs, config, source_of).metrics
        test_report[name] = metrics if name == "shipped" else metrics["hybrid"]
    out["test"] = test_report
    out["test_latency_ms"] = {leg: {"p50": round(statistics.median(s) * 1000, 2),
                                    "p95": round(sorted(s)[int(0.95 * len(s)) - 1] * 1000, 2)}
                              for leg, s in samples.items() if s}

    log("HNSW recall@10 against exact search ...")
    recalls = []
    for vector in test_vectors:
        approx = retrieval.vector_search(collection=collection, vector=vector, limit=10, actor=retrieval.SYSTEM,
                                         ef_search=tuned.ef_search)
        exact = retrieval.vector_search(collection=collection, vector=vector, limit=10, actor=retrieval.SYSTEM,
                                        exact=True)
        recalls.append(len({h.chunk_id for h in approx} & {h.chunk_id for h in exact}) / max(len(exact), 1))
    out["hnsw_recall@10"] = {"ef_search": tuned.ef_search, "recall": round(statistics.fmean(recalls), 4)}
    out["seconds"] = round(time.perf_counter() - started, 1)
    out["load_average_end"] = load_average()
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
