"""Import a BEIR corpus (corpus.jsonl) into a collection and index it.

    manage.py rag_import_beir --collection scifact --team search            # the BEIR folder from SCIFACT_DIR
    manage.py rag_import_beir --collection scifact --team search --dir /data/scifact

The BEIR folder holds corpus.jsonl: for SciFact, download
https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/scifact.zip and unzip it (docs/rag.md).

Run `make run` (or `manage.py portal_setup`) first: it migrates the database and seeds the demo people,
teams (among them `search`) and the offline models. `--team` is a team's slug or name: an admin lists and
creates teams on /accounts/teams/; an unknown team is refused with the list of the existing ones.
`--embedding-model` is a catalog model of kind embedding (/models/; default `local-minilm`, the offline
all-MiniLM-L6-v2 the portal ships); it is fixed when the collection is created. `--chunking` picks the
strategy (`whole`: one chunk per document, right for BEIR passages; `recursive` or `fixed` with
`--chunk-tokens`), also fixed at creation: change it by importing into a new collection.

Creates the collection if needed (whole-document chunks by default: BEIR documents are passages), syncs
its documents to the corpus (unchanged ones are skipped by content hash, changed ones re-indexed, missing
ones deleted unless --keep-missing) and runs the indexing job in this process, printing progress.
`--queue` hands the job to the Celery workers instead.
"""

from __future__ import annotations

import json
import threading
import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from apps.accounts.models import Team
from apps.core.request_context import acting_as
from apps.llm.services import catalog_seed_local
from apps.rag.config import CHUNK_STRATEGIES
from apps.rag.evaluation import beir_folder
from apps.rag.indexing import indexing_job_run
from apps.rag.models import Collection, IndexingJob
from apps.rag.services import collection_create, corpus_items, documents_upsert


class Command(BaseCommand):
    help = ("Import a BEIR corpus.jsonl into a RAG collection and index it. The folder is --dir or SCIFACT_DIR; "
            "SciFact: https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/scifact.zip (unzip it).")

    def add_arguments(self, parser):
        parser.add_argument("--collection", required=True)
        parser.add_argument("--team", required=True, help="team slug (or name)")
        parser.add_argument("--dir", help="BEIR folder holding corpus.jsonl (default: SCIFACT_DIR; SciFact: unzip "
                                          "BEIR's scifact.zip, see docs/rag.md)")
        parser.add_argument("--embedding-model", default="local-minilm",
                            help="catalog name of an embedding model (/models/), used when the collection is "
                                 "created; default local-minilm, the offline all-MiniLM-L6-v2")
        parser.add_argument("--chunking", default="whole", choices=list(CHUNK_STRATEGIES),
                            help="chunking strategy when the collection is created: whole (one chunk per "
                                 "document, for BEIR passages), recursive or fixed (sized by --chunk-tokens)")
        parser.add_argument("--chunk-tokens", type=int, default=200, help="chunk size for recursive and fixed")
        parser.add_argument("--limit", type=int, default=0, help="import only the first N documents")
        parser.add_argument("--keep-missing", action="store_true", help="do not delete documents absent from the corpus")
        parser.add_argument("--queue", action="store_true", help="queue the job for the workers instead of running it here")

    def handle(self, *args, **opts):
        try:
            folder = beir_folder(opts.get("dir"))
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages))
        team = Team.objects.filter(slug=opts["team"]).first() or Team.objects.filter(name=opts["team"]).first()
        if team is None:
            known = ", ".join(Team.objects.order_by("slug").values_list("slug", flat=True)) or "none yet"
            raise CommandError(f"There is no team {opts['team']!r}. Teams: {known}. Run `make run` (or "
                               "`manage.py portal_setup`) for the demo teams; an admin creates teams on "
                               "/accounts/teams/.")
        corpus = folder / "corpus.jsonl"
        if not corpus.exists():
            raise CommandError(f"There is no {corpus}.")
        with acting_as(None):
            collection = Collection.objects.filter(team=team, name=opts["collection"]).first()
            if collection is None:
                try:
                    if opts["embedding_model"] == "local-minilm":
                        catalog_seed_local()
                    collection = collection_create(
                        team=team, name=opts["collection"], embedding_model=opts["embedding_model"],
                        description=f"BEIR corpus imported from {corpus.parent.name}",
                        chunking={"strategy": opts["chunking"], "chunk_tokens": opts["chunk_tokens"],
                                  "overlap_tokens": min(30, opts["chunk_tokens"] // 4)})
                except ValidationError as exc:
                    raise CommandError(f"Cannot create the collection: {exc.message_dict}")
                self.stdout.write(f"created collection {collection.name} (id {collection.pk})")
            started = time.perf_counter()
            try:
                items = corpus_items(corpus.read_text(encoding="utf-8"))
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages))
            if opts["limit"]:
                items = items[: opts["limit"]]
            result = documents_upsert(collection=collection, items=items, remove_missing=not opts["keep_missing"],
                                      trigger="import", queue_task=opts["queue"])
            upsert_s = time.perf_counter() - started
            self.stdout.write(f"{len(items)} documents read and compared in {upsert_s:.2f} s: "
                              + json.dumps(result.summary))
            if result.job is None:
                self.stdout.write(json.dumps({"indexed_chunks": 0, "seconds": round(upsert_s, 2),
                                              "note": "nothing changed"}))
                return
            if opts["queue"]:
                self.stdout.write(f"indexing job {result.job.pk} queued for the workers")
                return
            self._run(result.job, started)

    def _run(self, job: IndexingJob, started: float) -> None:
        done = threading.Event()

        def report():
            while not done.wait(15):
                current = IndexingJob.objects.filter(pk=job.pk).values("progress_done", "progress_total",
                                                                        "chunks_written").first()
                if current:
                    self.stdout.write(f"  {current['progress_done']}/{current['progress_total']} documents, "
                                      f"{current['chunks_written']} chunks")
                    self.stdout.flush()

            connection.close()

        reporter = threading.Thread(target=report, daemon=True)
        reporter.start()
        index_started = time.perf_counter()
        try:
            finished = indexing_job_run(job.pk)
        finally:
            done.set()
            reporter.join(timeout=5)
        seconds = time.perf_counter() - index_started
        finished = finished or IndexingJob.objects.get(pk=job.pk)
        self.stdout.write(json.dumps({
            "job": finished.pk, "status": finished.status, "documents": finished.progress_total,
            "failed": finished.documents_failed, "chunks": finished.chunks_written,
            "index_seconds": round(seconds, 2), "total_seconds": round(time.perf_counter() - started, 2),
            "chunks_per_second": round(finished.chunks_written / seconds, 1) if seconds else None,
        }))
