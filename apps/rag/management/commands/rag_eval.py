"""Evaluate a collection's retrieval on BEIR queries and qrels; print nDCG@10, recall@100 and MRR@10 per leg.

    manage.py rag_eval --collection scifact --split test          # the BEIR folder from SCIFACT_DIR
    manage.py rag_eval --collection scifact --dir /data/scifact --split test

The BEIR folder holds queries.jsonl and qrels/<split>.tsv: for SciFact, download
https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/scifact.zip and unzip it (docs/rag.md).

Settings default to the collection's retrieval defaults; override any with --k1, --b, --fusion, --alpha,
--rrf-k, --bm25-weight, --vector-weight, --ef-search. Output is one JSON object.
"""

from __future__ import annotations

import json
import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.rag.config import RetrievalConfig
from apps.rag.evaluation import LEGS, beir_folder, evaluate, load_beir_dir
from apps.rag.models import Collection


class Command(BaseCommand):
    help = ("Retrieval metrics (nDCG@10, recall@100, MRR@10) per leg on a BEIR split. The folder is --dir or "
            "SCIFACT_DIR; SciFact: https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/scifact.zip "
            "(unzip it).")

    def add_arguments(self, parser):
        parser.add_argument("--collection", required=True)
        parser.add_argument("--team", help="team slug, when several teams have a collection of that name")
        parser.add_argument("--dir", help="BEIR folder: queries.jsonl and qrels/<split>.tsv (default: SCIFACT_DIR; "
                                          "SciFact: unzip BEIR's scifact.zip, see docs/rag.md)")
        parser.add_argument("--split", default="test")
        parser.add_argument("--legs", default=",".join(LEGS))
        parser.add_argument("--limit", type=int, default=0, help="evaluate only the first N queries")
        parser.add_argument("--per-query", help="write per-query metrics to this JSONL file")
        for name, kind in (("k1", float), ("b", float), ("fusion", str), ("alpha", float), ("rrf-k", int),
                           ("bm25-weight", float), ("vector-weight", float), ("ef-search", int),
                           ("candidates", int)):
            parser.add_argument(f"--{name}", type=kind)

    def handle(self, *args, **opts):
        try:
            folder = beir_folder(opts.get("dir"))
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages))
        collections = Collection.objects.filter(name=opts["collection"]).select_related(
            "team", "embedding_model__provider")
        if opts.get("team"):
            collections = collections.filter(team__slug=opts["team"])
        found = list(collections[:2])
        if not found:
            raise CommandError(f"There is no collection {opts['collection']!r}.")
        if len(found) > 1:
            raise CommandError("Several teams have a collection of that name: add --team.")
        collection = found[0]
        overrides = {key: opts.get(key) for key in ("k1", "b", "fusion", "alpha", "rrf_k", "bm25_weight", "vector_weight",
                                 "ef_search", "candidates")}
        try:
            config = RetrievalConfig.from_dict(collection.retrieval).replace(
                **{k: v for k, v in overrides.items() if v is not None})
            queries = load_beir_dir(folder, opts["split"])
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages))
        except FileNotFoundError as exc:
            raise CommandError(str(exc))
        if opts["limit"]:
            queries = queries[: opts["limit"]]
        legs = tuple(leg for leg in opts["legs"].split(",") if leg in LEGS)
        started = time.perf_counter()
        outcome = evaluate(collection, queries, config, legs=legs)
        seconds = time.perf_counter() - started
        output = {"collection": collection.name, "split": opts["split"], "queries": len(queries),
                  "config": config.as_dict(), "seconds": round(seconds, 1), "latency_ms": outcome.latency_ms}
        for leg in legs:
            m = outcome.metrics[leg]
            output[leg] = {"ndcg@10": m["ndcg@10"], "recall@100": m["recall@100"], "mrr@10": m["mrr@10"],
                           "recall@10": m["recall@10"]}
        if opts.get("per_query"):
            with open(opts["per_query"], "w", encoding="utf-8") as handle:
                for o in outcome.per_query:
                    handle.write(json.dumps({"query": o.query.query_id, "leg": o.leg, **o.metrics,
                                             "relevant_ranks": o.relevant_ranks}) + "\n")
        self.stdout.write(json.dumps(output, indent=2))
