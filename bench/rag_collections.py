"""Retrieval quality on three BEIR collections through the portal's own import, indexing and retrieval (issue #18).

    SCIFACT_DIR=… CISI_DIR=… MED_DIR=… python -m bench.rag_collections
    python -m bench.rag_collections --dir /data/scifact --dir /data/cisi --dir /data/med

Each folder is imported once into the `portal_bench_rag` database (collection named after the folder, whole-
document chunks, MiniLM; ~15-40 min on 2 shared cores for the three) and reused afterwards. Where to get the
data: docs/rag.md ("Retrieval evals"). Reported on each collection's test qrels, nDCG@10:

- the table: our BM25 leg and our hybrid at the shipped defaults (apps/rag/config.py), our vector leg, bm25s
  0.3.16 with its defaults (Lucene BM25 k1 1.5 b 0.75, its English stop words, PyStemmer's Snowball English,
  title + text, computed here on the same qrels), and the baseline anyone builds in an afternoon: plain RRF
  (k 60, top 100 of each) of bm25s and our MiniLM vector leg; each collection and the macro average;
- the selection: every default (BM25 k1 x b, fusion method and its parameters, candidates per leg) over a
  grid, ranked by the macro average — the shipped defaults should be its best or within noise of it;
- leave-one-collection-out: the same selection on two collections, reported on the third, beside the
  shipped defaults and the baseline there (how much the choice itself overfits).

Prints one JSON object (progress on stderr); `--markdown` also prints the tables for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from bench.rag_common import load_average, log, setup

ENV_DIRS = (("scifact", "SCIFACT_DIR"), ("cisi", "CISI_DIR"), ("med", "MED_DIR"))
K1_GRID = (1.2, 1.5, 2.0, 2.5)
B_GRID = (0.6, 0.75, 0.9)
ALPHAS = (0.3, 0.4, 0.5, 0.6, 0.7)
RRF_GRID = tuple((k, w) for k in (10, 20, 60) for w in (1.0, 1.25))
CANDIDATES = (50, 100, 200)
POOL = max(CANDIDATES)
BASELINE_DEPTH = 100
BM25S_VERSION = "0.3.16"


def beir_dirs(given: list[str] | None) -> list[Path]:
    """The BEIR folders: --dir (repeatable), else SCIFACT_DIR, CISI_DIR and MED_DIR; a clear stop when missing."""
    if given:
        return [Path(d) for d in given]
    missing = [env for _, env in ENV_DIRS if not os.environ.get(env)]
    if missing:
        raise SystemExit(f"Set {', '.join(missing)} (or pass --dir for each folder): BEIR folders with corpus.jsonl, "
                         "queries.jsonl and qrels/test.tsv; docs/rag.md says where to download SciFact, CISI and MED.")
    return [Path(os.environ[env]) for _, env in ENV_DIRS]


def ensure_collection(folder: Path):
    """The collection named after the folder, imported and indexed once (reused when its chunks are all there)."""
    from django.core.management import call_command

    from apps.rag.models import Collection

    documents = sum(1 for line in (folder / "corpus.jsonl").open(encoding="utf-8") if line.strip())
    collection = Collection.objects.filter(name=folder.name, team__slug="search").first()
    if collection is None or collection.chunk_count < documents:
        log(f"importing and indexing {folder.name} ({documents:,} documents) ...")
        call_command("rag_import_beir", collection=folder.name, team="search", dir=str(folder))
        collection = Collection.objects.get(name=folder.name, team__slug="search")
    return collection


def bm25s_ranking(folder: Path, queries) -> list[list[tuple[str, float]]]:
    """bm25s with its defaults on title + text: per query, the top POOL documents with their scores."""
    import bm25s  # why: a bench-only dependency (the bench extra), loaded when this bench runs
    import Stemmer  # why: PyStemmer, idem

    assert bm25s.__version__ == BM25S_VERSION, f"bm25s {bm25s.__version__}: the bench pins {BM25S_VERSION}"
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").open(encoding="utf-8") if line.strip()]
    ids = [str(d["_id"]) for d in corpus]
    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    retriever.index(bm25s.tokenize([(d.get("title") or "") + " " + d["text"] for d in corpus], stopwords="en",
                                   stemmer=stemmer, show_progress=False), show_progress=False)
    out = []
    for query in queries:
        tokens = bm25s.tokenize([query.text], stopwords="en", stemmer=stemmer, show_progress=False)
        if not tokens.vocab:
            out.append([])
            continue
        docs, scores = retriever.retrieve(tokens, k=min(POOL, len(ids)), show_progress=False)
        out.append([(ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0])
    return out


class Collection3:
    """One collection's runs: each BM25 grid point's leg, the vector leg, bm25s; scored at document level."""

    def __init__(self, folder: Path):
        from apps.rag import retrieval
        from apps.rag.config import RetrievalConfig
        from apps.rag.evaluation import leg_runs, load_beir_dir, source_names

        self.name = folder.name
        self.collection = ensure_collection(folder)
        self.queries = load_beir_dir(folder, "test")
        self.source_of = source_names(self.collection)
        base = RetrievalConfig()
        log(f"{self.name}: {len(self.queries)} queries; embedding them ...")
        vectors = [v for i in range(0, len(self.queries), 64)
                   for v in retrieval.embed_query(self.collection, [q.text for q in self.queries[i:i + 64]],
                                                  feature="bench")]
        started = time.perf_counter()
        self.vector = [r["vector"] for r in leg_runs(self.collection, self.queries, base, legs=("vector",),
                                                     pool=POOL, vectors=vectors)[0]]
        self.bm25 = {}
        for k1 in K1_GRID:
            for b in B_GRID:
                runs, _ = leg_runs(self.collection, self.queries, base.replace(k1=k1, b=b), legs=("bm25",), pool=POOL)
                self.bm25[(k1, b)] = [r["bm25"] for r in runs]
        log(f"{self.name}: legs in {time.perf_counter() - started:.0f} s; bm25s ...")
        self.bm25s = bm25s_ranking(folder, self.queries)

    def score(self, config, leg: str = "hybrid") -> float:
        """Mean nDCG@10 of `leg` under `config` (its k1/b pick the BM25 run, its candidates cut both legs)."""
        from apps.rag.evaluation import documents_ranked, ndcg_at
        from apps.rag.retrieval import fuse

        bm25 = self.bm25[(config.k1, config.b)]
        config = config.replace(mode=leg)
        values = []
        for query, b_hits, v_hits in zip(self.queries, bm25, self.vector, strict=True):
            if leg == "hybrid":
                b_hits, v_hits = b_hits[:config.candidates], v_hits[:config.candidates]
            ranked = fuse(config, b_hits, v_hits)
            values.append(ndcg_at(documents_ranked((cid for cid, _ in ranked), self.source_of), query.relevant))
        return statistics.fmean(values)

    def score_bm25s(self, *, baseline_rrf: bool) -> float:
        """bm25s alone, or plain RRF (k 60, top BASELINE_DEPTH of each) of bm25s and our vector leg."""
        from apps.rag.evaluation import ndcg_at
        from apps.rag.retrieval import LegHit, fuse_rrf

        values = []
        for query, ranked, v_hits in zip(self.queries, self.bm25s, self.vector, strict=True):
            docs = [doc for doc, _ in ranked]
            if baseline_rrf:
                index: dict[str, int] = {}
                vector_docs = [self.source_of[h.chunk_id] for h in v_hits]
                legs = {"bm25": [LegHit(index.setdefault(d, len(index)), 0.0, r)
                                 for r, d in enumerate(docs[:BASELINE_DEPTH], start=1)],
                        "vector": [LegHit(index.setdefault(d, len(index)), 0.0, r)
                                   for r, d in enumerate(vector_docs[:BASELINE_DEPTH], start=1)]}
                name_of = {i: d for d, i in index.items()}
                docs = [name_of[i] for i, _ in fuse_rrf(legs, k=60)]
            values.append(ndcg_at(docs, query.relevant))
        return statistics.fmean(values)


def candidate_configs():
    """Every hybrid configuration the selection ranks: BM25 grid x fusion grid x candidates per leg."""
    from apps.rag.config import RetrievalConfig

    base = RetrievalConfig()
    for k1 in K1_GRID:
        for b in B_GRID:
            for candidates in CANDIDATES:
                common = {"k1": k1, "b": b, "candidates": candidates}
                for alpha in ALPHAS:
                    yield base.replace(fusion="zscore", alpha=alpha, **common)
                    yield base.replace(fusion="convex", alpha=alpha, **common)
                for rrf_k, weight in RRF_GRID:
                    yield base.replace(fusion="rrf", rrf_k=rrf_k, vector_weight=weight, bm25_weight=1.0, **common)


def describe(config) -> str:
    fusion = (f"rrf k={config.rrf_k} w_vec={config.vector_weight}" if config.fusion == "rrf"
              else f"{config.fusion} α={config.alpha}")
    return f"k1={config.k1} b={config.b} {fusion} candidates={config.candidates}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", action="append", help="a BEIR folder (repeat); default SCIFACT_DIR, CISI_DIR, MED_DIR")
    parser.add_argument("--markdown", action="store_true", help="also print the tables for BENCHMARKS.md (stderr)")
    parser.add_argument("--table-only", action="store_true", help="the table at the shipped defaults only "
                                                                  "(no selection grid, no leave-one-out)")
    args = parser.parse_args(argv)
    folders = beir_dirs(args.dir)
    setup()
    from apps.rag.config import RetrievalConfig

    out: dict = {"load_average_start": load_average(), "bm25s": BM25S_VERSION}
    started = time.perf_counter()
    runs = [Collection3(folder) for folder in folders]
    shipped = RetrievalConfig()
    out["defaults"] = describe(shipped)
    table = {}
    for run in runs:
        table[run.name] = {
            "queries": len(run.queries),
            "our_bm25": run.score(shipped, "bm25"),
            "bm25s": run.score_bm25s(baseline_rrf=False),
            "our_vector": run.score(shipped, "vector"),
            "baseline_rrf": run.score_bm25s(baseline_rrf=True),
            "our_hybrid": run.score(shipped, "hybrid"),
        }
    columns = ("our_bm25", "bm25s", "our_vector", "baseline_rrf", "our_hybrid")
    table["macro"] = {c: statistics.fmean(table[r.name][c] for r in runs) for c in columns}
    out["table"] = {name: {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
                    for name, row in table.items()}
    bar = {"hybrid_ge_baseline_everywhere": all(table[r.name]["our_hybrid"] >= table[r.name]["baseline_rrf"]
                                                for r in runs),
           "bm25_ge_bm25s_everywhere": all(table[r.name]["our_bm25"] >= table[r.name]["bm25s"] for r in runs),
           "macro_margin": round(table["macro"]["our_hybrid"] - table["macro"]["baseline_rrf"], 4)}
    bar["met"] = bar["hybrid_ge_baseline_everywhere"] and bar["bm25_ge_bm25s_everywhere"] and bar["macro_margin"] >= 0.01
    out["bar"] = bar
    if args.table_only:
        out["load_average_end"] = load_average()
        if args.markdown:
            log(markdown(out, [r.name for r in runs]))
        return out

    log("selection over the grid ...")
    configs = list(candidate_configs())
    grid = {describe(c): {r.name: r.score(c) for r in runs} for c in configs}
    macro = {name: statistics.fmean(scores.values()) for name, scores in grid.items()}
    ranked = sorted(macro, key=lambda n: -macro[n])
    out["selection"] = {"configs": len(configs), "top": [{"config": n, "macro": round(macro[n], 4),
                                                          **{k: round(v, 4) for k, v in grid[n].items()}}
                                                         for n in ranked[:10]],
                        "shipped_macro": round(macro.get(describe(shipped), table["macro"]["our_hybrid"]), 4),
                        "shipped_rank": ranked.index(describe(shipped)) + 1 if describe(shipped) in macro else None}
    bm25_grid = {(k1, b): {r.name: r.score(shipped.replace(k1=k1, b=b), "bm25") for r in runs}
                 for k1 in K1_GRID for b in B_GRID}
    bm25_macro = {kb: statistics.fmean(scores.values()) for kb, scores in bm25_grid.items()}
    out["bm25_grid"] = {f"k1={k1},b={b}": {"macro": round(bm25_macro[(k1, b)], 4),
                                           **{k: round(v, 4) for k, v in bm25_grid[(k1, b)].items()}}
                        for k1, b in bm25_grid}

    loo = {}
    for held in runs:
        others = [r for r in runs if r is not held]
        best = max(grid, key=lambda n: statistics.fmean(grid[n][r.name] for r in others))
        best_bm25 = max(bm25_grid, key=lambda kb: statistics.fmean(bm25_grid[kb][r.name] for r in others))
        loo[held.name] = {"tuned_on": [r.name for r in others], "chosen": best,
                          "held_out_hybrid": round(grid[best][held.name], 4),
                          "held_out_best_possible": round(max(g[held.name] for g in grid.values()), 4),
                          "shipped_hybrid": round(table[held.name]["our_hybrid"], 4),
                          "baseline_rrf": round(table[held.name]["baseline_rrf"], 4),
                          "chosen_bm25": f"k1={best_bm25[0]},b={best_bm25[1]}",
                          "held_out_bm25": round(bm25_grid[best_bm25][held.name], 4),
                          "bm25s": round(table[held.name]["bm25s"], 4)}
    out["leave_one_out"] = loo
    out["seconds"] = round(time.perf_counter() - started, 1)
    out["load_average_end"] = load_average()
    if args.markdown:
        log(markdown(out, [r.name for r in runs]))
    return out


def markdown(out: dict, names: list[str]) -> str:
    rows = ["| nDCG@10 | our BM25 | bm25s | our vector | plain RRF (bm25s + MiniLM, k 60) | our hybrid |",
            "|---|---|---|---|---|---|"]
    for name in [*names, "macro"]:
        row = out["table"][name]
        label = f"**{name}**" if name == "macro" else f"{name} ({row['queries']} q)"
        rows.append(f"| {label} | " + " | ".join(f"{row[c]:.4f}" for c in
                                                 ("our_bm25", "bm25s", "our_vector", "baseline_rrf", "our_hybrid"))
                    + " |")
    if "leave_one_out" not in out:
        return "\n".join(rows)
    rows += ["", "| held out | tuned on | chosen there | held-out hybrid | shipped hybrid | plain RRF baseline | "
                 "best possible there | held-out BM25 (k1/b chosen there) | bm25s |", "|---|---|---|---|---|---|---|---|---|"]
    for name, row in out["leave_one_out"].items():
        rows.append(f"| {name} | {' + '.join(row['tuned_on'])} | {row['chosen']} | {row['held_out_hybrid']:.4f} | "
                    f"{row['shipped_hybrid']:.4f} | {row['baseline_rrf']:.4f} | {row['held_out_best_possible']:.4f} | "
                    f"{row['held_out_bm25']:.4f} ({row['chosen_bm25']}) | {row['bm25s']:.4f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
