"""Evaluate collections' retrieval on BEIR queries and qrels; print nDCG@10, recall@100 and MRR@10 per leg.

    manage.py rag_eval --collection scifact --split test          # the BEIR folder from SCIFACT_DIR
    manage.py rag_eval --collection scifact --dir /data/scifact --split test
    manage.py rag_eval --dir /data/scifact --dir /data/cisi --dir /data/med   # each collection + the macro average

The BEIR folder holds queries.jsonl and qrels/<split>.tsv: for SciFact, download
https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/scifact.zip and unzip it (docs/rag.md).

Several `--dir`s evaluate several collections with the same settings: `--collection` is then given once per
`--dir`, in the same order, or left out, and each folder's name is its collection's name (as
`rag_import_beir` names them by default). The output then holds each collection's figures and their macro
average (each collection counts once), the figure the shipped defaults were chosen by (ADR 0042). A folder
without qrels/<split>.tsv uses qrels/test.tsv (CISI and MED have only a test split).

Settings default to the collection's retrieval defaults; override any with --k1, --b, --fusion, --alpha,
--rrf-k, --bm25-weight, --vector-weight, --ef-search, --candidates. Output is one JSON object.
`--per-query FILE` writes one JSON line per query and leg with its metrics and the leg's ranked documents
with their scores (best chunk per document), so fusion can be recomputed outside the portal.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.rag.config import LEGS, RetrievalConfig
from apps.rag.evaluation import beir_folder, evaluate, load_beir_dir, macro_metrics
from apps.rag.models import Collection

OVERRIDES = (("k1", float), ("b", float), ("fusion", str), ("alpha", float), ("rrf-k", int),
             ("bm25-weight", float), ("vector-weight", float), ("ef-search", int), ("candidates", int))


def parse_legs(raw: str) -> tuple[str, ...]:
    """The legs named in `--legs` (comma-separated), refusing names that are not legs."""
    names = [name.strip() for name in (raw or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in LEGS]
    if unknown or not names:
        shown = ", ".join(repr(n) for n in unknown) or "nothing"
        raise CommandError(f"Unknown --legs {shown}: choose from {', '.join(LEGS)} (comma-separated).")
    return tuple(dict.fromkeys(names))


def _as_list(value) -> list:
    """A repeatable option's values (call_command may pass one plain string)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


class Command(BaseCommand):
    help = ("Retrieval metrics (nDCG@10, recall@100, MRR@10) per leg on a BEIR split, for one or several "
            "collections (several --dir: each collection and the macro average). The folder is --dir or "
            "SCIFACT_DIR; SciFact: https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/scifact.zip "
            "(unzip it).")

    def add_arguments(self, parser):
        parser.add_argument("--collection", action="append",
                            help="collection name; once per --dir (default: each folder's name)")
        parser.add_argument("--team", help="team slug, when several teams have a collection of that name")
        parser.add_argument("--dir", action="append",
                            help="BEIR folder: queries.jsonl and qrels/<split>.tsv; repeat for several collections "
                                 "(default: SCIFACT_DIR; SciFact: unzip BEIR's scifact.zip, see docs/rag.md)")
        parser.add_argument("--split", default="test")
        parser.add_argument("--legs", default=",".join(LEGS), help=f"comma-separated, from {', '.join(LEGS)}")
        parser.add_argument("--limit", type=int, default=0, help="evaluate only the first N queries")
        parser.add_argument("--per-query", help="write per-query metrics and each leg's ranked documents to this "
                                                "JSONL file")
        for name, kind in OVERRIDES:
            parser.add_argument(f"--{name}", type=kind)

    def handle(self, *args, **opts):
        legs = parse_legs(opts["legs"])
        targets = self._targets(opts)
        overrides = {name.replace("-", "_"): opts.get(name.replace("-", "_")) for name, _ in OVERRIDES}
        overrides = {k: v for k, v in overrides.items() if v is not None}
        reports, per_query = [], []
        for collection, folder in targets:
            try:
                config = RetrievalConfig.from_dict(collection.retrieval).replace(**overrides)
                queries = load_beir_dir(folder, opts["split"])
            except ValidationError as exc:
                raise CommandError(f"{collection.name}: " + "; ".join(exc.messages))
            except FileNotFoundError as exc:
                raise CommandError(str(exc))
            if opts["limit"]:
                queries = queries[: opts["limit"]]
            started = time.perf_counter()
            outcome = evaluate(collection, queries, config, legs=legs)
            report = {"collection": collection.name, "split": opts["split"], "queries": len(queries),
                      "config": config.as_dict(), "seconds": round(time.perf_counter() - started, 1),
                      "latency_ms": outcome.latency_ms}
            for leg in legs:
                m = outcome.metrics[leg]
                report[leg] = {"ndcg@10": m["ndcg@10"], "recall@100": m["recall@100"], "mrr@10": m["mrr@10"],
                               "recall@10": m["recall@10"]}
            reports.append(report)
            per_query.extend({"collection": collection.name, "query": o.query.query_id, "leg": o.leg, **o.metrics,
                              "relevant_ranks": o.relevant_ranks,
                              "ranked": [[doc, round(score, 6)] for doc, score in o.ranked]}
                             for o in outcome.per_query)
        if opts.get("per_query"):
            with open(opts["per_query"], "w", encoding="utf-8") as handle:
                for row in per_query:
                    handle.write(json.dumps(row) + "\n")
        if len(reports) == 1:
            output = reports[0]
        else:
            output = {"collections": reports,
                      "macro": macro_metrics({leg: r[leg] for leg in legs} for r in reports)}
        self.stdout.write(json.dumps(output, indent=2))

    def _targets(self, opts) -> list[tuple[Collection, Path]]:
        dirs = _as_list(opts.get("dir")) or [None]
        names = _as_list(opts.get("collection"))
        try:
            folders = [beir_folder(d) for d in dirs]
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages))
        if not names:
            names = [folder.name for folder in folders]
        if len(names) != len(folders):
            raise CommandError(f"{len(names)} --collection for {len(folders)} --dir: give one collection per "
                               "folder, in the same order, or none (each folder's name is then its collection's).")
        return [(self._collection(name, opts.get("team")), folder) for name, folder in zip(names, folders, strict=True)]

    @staticmethod
    def _collection(name: str, team: str | None) -> Collection:
        collections = Collection.objects.filter(name=name).select_related("team", "embedding_model__provider")
        if team:
            collections = collections.filter(team__slug=team)
        found = list(collections[:2])
        if not found:
            raise CommandError(f"There is no collection {name!r}.")
        if len(found) > 1:
            raise CommandError(f"Several teams have a collection named {name!r}: add --team.")
        return found[0]
