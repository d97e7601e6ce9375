"""Same results check for query-path speed work (issue #18): every SciFact test query's ranked lists, dumped and
compared between two trees on the same bench database and collection.

    SCIFACT_DIR=… python -m bench.rag_same dump OUT.json      # run in each tree (same DATABASE_URL)
    python -m bench.rag_same compare BEFORE.json AFTER.json   # exits 1 on any difference

`dump` runs `apps.rag.retrieval.retrieve()` for each test query as a member of the collection's team (the real
tenant subquery), with the collection's configuration, and writes, per query: the hits (chunk id, fused rank and
score, each leg's rank and score, matched terms) and each leg's whole candidate list (chunk id, rank, score);
and the hits again with the query's vector given (the path of eval runs).
`compare` asks for equality of all of it, scores to the bit (JSON keeps a float's every bit), ids and order.
The script only calls retrieve(), so the same file runs unchanged in an older tree (copy it into its bench/).
"""

from __future__ import annotations

import json
import sys


def dump(path: str) -> None:
    from bench.rag_collections import beir_dirs, ensure_collection
    from bench.rag_common import log, setup

    setup()
    from django.contrib.auth import get_user_model

    from apps.rag import retrieval
    from apps.rag.config import RetrievalConfig
    from apps.rag.evaluation import load_beir_dir

    folder = beir_dirs(None)[0]
    collection = ensure_collection(folder)
    config = RetrievalConfig.from_dict(collection.retrieval)
    actor = get_user_model().objects.get(username="erin")  # a member of `search`: the real tenant subquery
    queries = load_beir_dir(folder, "test")
    out = {"collection": collection.pk, "chunks": collection.chunk_count, "config": collection.retrieval,
           "queries": {}}
    for query in queries:
        result = retrieval.retrieve(collection=collection, query=query.text, actor=actor, config=config,
                                    explain=False)
        vector = retrieval.embed_query(collection, [query.text])[0]
        given = retrieval.retrieve(collection=collection, query=query.text, actor=actor, config=config,
                                   query_vector=vector, explain=False)  # the path of eval runs
        out["queries"][query.query_id] = {
            "hits": _hits(result.hits),
            "bm25": [[h.chunk_id, h.rank, h.score, h.terms] for h in result.bm25],
            "vector": [[h.chunk_id, h.rank, h.score] for h in result.vector],
            "hits_vector_given": _hits(given.hits),
        }
    with open(path, "w") as handle:
        json.dump(out, handle)
    log(f"{len(queries)} queries dumped to {path}")


def _hits(hits) -> list:
    return [[h.chunk_id, h.fused_rank, h.fused_score, h.bm25_rank, h.bm25_score, h.vector_rank, h.vector_similarity,
             h.matched_terms] for h in hits]


def compare(before_path: str, after_path: str) -> int:
    with open(before_path) as handle:
        before = json.load(handle)
    with open(after_path) as handle:
        after = json.load(handle)
    if before["collection"] != after["collection"] or before["chunks"] != after["chunks"]:
        print("not the same collection", before["collection"], after["collection"])
        return 1
    differ = [qid for qid in before["queries"] if before["queries"][qid] != after["queries"].get(qid)]
    counts = {leg: sum(len(q[leg]) for q in after["queries"].values()) for leg in ("hits", "bm25", "vector", "hits_vector_given")}
    print(json.dumps({"queries": len(before["queries"]), "differing": len(differ), "first_differing": differ[:5],
                      "compared_rows": counts}))
    return 1 if differ or set(before["queries"]) != set(after["queries"]) else 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "dump":
        dump(argv[1])
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        return compare(argv[1], argv[2])
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
