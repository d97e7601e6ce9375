"""Retrieval evals: BEIR queries and qrels against a collection; nDCG@10, recall@10/100 and MRR@10 per leg.

Documents are ranked by their best chunk (the first time a document appears in the leg's chunk ranking),
and judged by source name, so any chunking of the same corpus can be compared. Metrics follow BEIR
(pytrec_eval): graded gains for nDCG with a log2 discount, recall over the judged-relevant documents
(grade > 0), reciprocal rank of the first relevant document within the top 10.

The same `evaluate()` serves the background eval runs (UI) and `manage.py rag_eval`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import statistics
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.tasks import task_queue
from apps.rag import retrieval
from apps.rag.config import LEGS, MAX_ATTEMPTS, RetrievalConfig, stale_after
from apps.rag.models import (
    Chunk,
    Collection,
    Document,
    JobStatus,
    RetrievalDataset,
    RetrievalEvalResult,
    RetrievalEvalRun,
    RetrievalQuery,
)

log = logging.getLogger(__name__)

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
MAX_QUERIES = 20_000


# --- metrics ----------------------------------------------------------------------------------------

def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    gains = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    if ideal == 0:
        return 0.0
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]) if relevant.get(doc, 0) > 0)
    return dcg / ideal


def recall_at(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    wanted = {d for d, g in relevant.items() if g > 0}
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def mrr_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    for i, doc in enumerate(ranked[:k], start=1):
        if relevant.get(doc, 0) > 0:
            return 1.0 / i
    return 0.0


def query_metrics(ranked: list[str], relevant: dict[str, int]) -> dict[str, float]:
    return {"ndcg@10": ndcg_at(ranked, relevant), "recall@10": recall_at(ranked, relevant, 10),
            "recall@100": recall_at(ranked, relevant, 100), "mrr@10": mrr_at(ranked, relevant)}


def mean_metrics(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    rows = list(rows)
    return {m: round(statistics.fmean(r[m] for r in rows), 4) if rows else 0.0 for m in METRICS}


def macro_metrics(per_collection: Iterable[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """The unweighted mean over collections of each leg's metrics (each collection counts once, whatever its
    number of queries): the figure the retrieval defaults are chosen by (ADR 0042)."""
    per_collection = list(per_collection)
    legs = [leg for leg in per_collection[0] if all(leg in c for c in per_collection)] if per_collection else []
    return {leg: {m: round(statistics.fmean(c[leg][m] for c in per_collection), 4) for m in METRICS
                  if all(m in c[leg] for c in per_collection)} for leg in legs}


def documents_ranked(ranked_chunks: Iterable[int], source_of: dict[int, str]) -> list[str]:
    """Source names in order of their best chunk."""
    return [name for name, _ in documents_scored(((cid, 0.0) for cid in ranked_chunks), source_of)]


def documents_scored(ranked_chunks: Iterable[tuple[int, float]], source_of: dict[int, str]) -> list[tuple[str, float]]:
    """(source name, score of its best chunk) in order of their best chunk."""
    seen: dict[str, float] = {}
    for cid, score in ranked_chunks:
        name = source_of.get(cid)
        if name is not None and name not in seen:
            seen[name] = score
    return list(seen.items())


# --- BEIR files -------------------------------------------------------------------------------------

@dataclass
class EvalQuery:
    query_id: str
    text: str
    relevant: dict[str, int]


def parse_queries(text: str) -> dict[str, str]:
    queries, errors = {}, []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            qid, body = str(row["_id"]), str(row["text"])
        except (ValueError, KeyError, TypeError):
            errors.append(f"queries line {n}: expected JSON with _id and text.")
            if len(errors) >= 10:
                break
            continue
        queries[qid] = body
    if errors:
        raise ValidationError({"queries": errors})
    return queries


def parse_qrels(text: str) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    errors = []
    reader = csv.reader(io.StringIO(text), delimiter="\t")
    for n, row in enumerate(reader, start=1):
        if not row or not "".join(row).strip():
            continue
        if n == 1 and row[0].strip().lower() in ("query-id", "query_id", "qid"):
            continue
        if len(row) == 4:  # TREC layout: qid Q0 docid grade
            row = [row[0], row[2], row[3]]
        try:
            qid, doc, grade = row[0].strip(), row[1].strip(), int(row[2])
        except (IndexError, ValueError):
            errors.append(f"qrels line {n}: expected query-id, corpus-id and an integer score, tab-separated.")
            if len(errors) >= 10:
                break
            continue
        qrels.setdefault(qid, {})[doc] = grade
    if errors:
        raise ValidationError({"qrels": errors})
    return qrels


def beir_queries(queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> list[EvalQuery]:
    """The judged queries (those with at least one relevant document), in qrels order."""
    out = []
    for qid, relevant in qrels.items():
        if qid in queries and any(g > 0 for g in relevant.values()):
            out.append(EvalQuery(qid, queries[qid], relevant))
    return out


SCIFACT_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/scifact.zip"


def beir_folder(given: str | None = None) -> Path:
    """The BEIR folder a command reads: `--dir`, else the SCIFACT_DIR setting; a clear error when neither is set."""
    raw = given or getattr(settings, "SCIFACT_DIR", "")
    if not raw:
        raise ValidationError(
            "No BEIR folder: give --dir or set SCIFACT_DIR to a folder holding corpus.jsonl, queries.jsonl and "
            f"qrels/<split>.tsv. For the BEIR SciFact dataset: download {SCIFACT_URL}, unzip it and point "
            "SCIFACT_DIR at the scifact/ folder (see docs/rag.md).")
    return Path(raw)


def load_beir_dir(path: str | Path, split: str) -> list[EvalQuery]:
    path = Path(path)
    queries = parse_queries((path / "queries.jsonl").read_text(encoding="utf-8"))
    qrels_file = path / "qrels" / f"{split}.tsv"
    if not qrels_file.exists():
        raise ValidationError({"split": f"There is no {qrels_file}."})
    return beir_queries(queries, parse_qrels(qrels_file.read_text(encoding="utf-8")))


# --- evaluating -------------------------------------------------------------------------------------

@dataclass
class QueryOutcome:
    query: EvalQuery
    leg: str
    metrics: dict[str, float]
    relevant_ranks: dict[str, int | None]
    top: list[str]
    ranked: list[tuple[str, float]] = field(default_factory=list)  # (document, its best chunk's score), best first


@dataclass
class EvalOutcome:
    metrics: dict[str, dict[str, float]]
    per_query: list[QueryOutcome] = field(default_factory=list)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    queries: int = 0


def source_names(collection: Collection) -> dict[int, str]:
    return dict(Chunk.objects.filter(collection=collection).values_list("pk", "document__source_name"))


def eval_pool(collection: Collection, k: int = 100) -> int:
    """Chunks each leg fetches so that about `k` documents are ranked."""
    docs = Document.objects.filter(collection=collection, chunk_count__gt=0).count()
    per_doc = collection.chunk_count / docs if docs else 1.0
    return min(1000, max(k, math.ceil(k * min(per_doc, 10))))


def leg_runs(collection: Collection, queries: list[EvalQuery], config: RetrievalConfig, *, actor=retrieval.SYSTEM,
             legs=LEGS, pool: int | None = None, vectors: list | None = None,
             progress: Callable[[int], None] | None = None) -> tuple[list[dict[str, list]], dict]:
    """Per query, each leg's chunk ranking ({"bm25": [LegHit…], "vector": […]}) and the latency samples."""
    pool = pool or max(eval_pool(collection), config.candidates)
    want_bm25 = any(leg in ("bm25", "hybrid") for leg in legs)
    want_vector = any(leg in ("vector", "hybrid") for leg in legs)
    if want_vector and vectors is None:
        vectors = []
        for start in range(0, len(queries), 64):
            vectors.extend(retrieval.embed_query(collection, [q.text for q in queries[start:start + 64]],
                                                 feature="rag.eval"))
    runs, samples = [], {"bm25": [], "vector": []}
    for i, query in enumerate(queries):
        legs_hits: dict[str, list] = {"bm25": [], "vector": []}
        if want_bm25:
            t = time.perf_counter()
            legs_hits["bm25"] = retrieval.bm25_search(collection=collection, query=query.text, limit=pool,
                                                      actor=actor, k1=config.k1, b=config.b,
                                                      filters=config.filters)
            samples["bm25"].append(time.perf_counter() - t)
        if want_vector:
            t = time.perf_counter()
            legs_hits["vector"] = retrieval.vector_search(collection=collection, vector=vectors[i], limit=pool,
                                                          actor=actor, ef_search=config.ef_search,
                                                          filters=config.filters)
            samples["vector"].append(time.perf_counter() - t)
        runs.append(legs_hits)
        if progress and (i + 1) % 10 == 0:
            progress(i + 1)
    return runs, samples


def score_runs(queries: list[EvalQuery], runs: list[dict[str, list]], config: RetrievalConfig,
               source_of: dict[int, str], legs=LEGS) -> EvalOutcome:
    per_query: list[QueryOutcome] = []
    by_leg: dict[str, list[dict]] = {leg: [] for leg in legs}
    for query, hits in zip(queries, runs, strict=True):
        for leg in legs:
            bm25, vector = hits["bm25"], hits["vector"]
            if leg == "hybrid":  # fuse what retrieval would: each leg's top `candidates`
                bm25, vector = bm25[:config.pool], vector[:config.pool]
            ranked = documents_scored(retrieval.fuse(config.replace(mode=leg), bm25, vector), source_of)
            docs = [name for name, _ in ranked]
            metrics = query_metrics(docs, query.relevant)
            by_leg[leg].append(metrics)
            position = {d: i for i, d in enumerate(docs, start=1)}
            per_query.append(QueryOutcome(
                query=query, leg=leg, metrics=metrics, top=docs[:10], ranked=ranked,
                relevant_ranks={d: position.get(d) for d, g in query.relevant.items() if g > 0}))
    return EvalOutcome(metrics={leg: mean_metrics(rows) for leg, rows in by_leg.items()}, per_query=per_query,
                       queries=len(queries))


def evaluate(collection: Collection, queries: list[EvalQuery], config: RetrievalConfig, *,
             actor=retrieval.SYSTEM, legs=LEGS, progress=None) -> EvalOutcome:
    runs, samples = leg_runs(collection, queries, config, actor=actor, legs=legs, progress=progress)
    outcome = score_runs(queries, runs, config, source_names(collection), legs=legs)
    outcome.latency_ms = {leg: _summary_ms(s) for leg, s in samples.items() if s}
    return outcome


def _summary_ms(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ms = sorted(s * 1000 for s in samples)
    pick = lambda p: ms[min(len(ms) - 1, max(0, math.ceil(p / 100 * len(ms)) - 1))]  # noqa: E731
    return {"p50_ms": round(statistics.median(ms), 2), "p95_ms": round(pick(95), 2), "n": len(ms)}


# --- datasets ---------------------------------------------------------------------------------------

@transaction.atomic
def dataset_import(*, collection: Collection, name: str, queries_text: str, qrels_text: str, split: str = "",
                   description: str = "", user=None) -> RetrievalDataset:
    """A retrieval dataset from BEIR files (queries.jsonl + a qrels tsv): validated first, one transaction."""
    name = (name or "").strip()
    errors = {}
    if not name:
        errors["name"] = "Give the dataset a name."
    elif RetrievalDataset.objects.filter(collection=collection, name=name).exists():
        errors["name"] = f"{collection.name} already has a dataset named {name}."
    try:
        queries = parse_queries(queries_text)
    except ValidationError as exc:
        errors.update(exc.message_dict)
        queries = {}
    try:
        qrels = parse_qrels(qrels_text)
    except ValidationError as exc:
        errors.update(exc.message_dict)
        qrels = {}
    judged = beir_queries(queries, qrels) if queries and qrels else []
    if not errors and not judged:
        errors["qrels"] = "No query in the qrels file has both a text in queries.jsonl and a relevant document."
    if len(judged) > MAX_QUERIES:
        errors["queries"] = f"At most {MAX_QUERIES:,} judged queries per dataset."
    if errors:
        raise ValidationError(errors)
    dataset = RetrievalDataset.objects.create(
        collection=collection, name=name, description=(description or "").strip(), split=(split or "")[:40],
        query_count=len(judged), judgement_count=sum(len(q.relevant) for q in judged),
        created_by=user if getattr(user, "is_authenticated", False) else None)
    RetrievalQuery.objects.bulk_create([RetrievalQuery(dataset=dataset, query_id=q.query_id[:200], text=q.text,
                                                       relevant=q.relevant) for q in judged], batch_size=1000)
    known = set(Document.objects.filter(collection=collection).values_list("source_name", flat=True))
    missing = {d for q in judged for d in q.relevant} - known
    audit_record(action="rag.dataset.import", obj=dataset, team=collection.team,
                 actor=user if getattr(user, "is_authenticated", False) else None,
                 changes={"collection": collection.name, "name": name, "split": split, "queries": len(judged),
                          "judgements": dataset.judgement_count, "judged_documents_missing": len(missing)})
    return dataset


def dataset_queries(dataset: RetrievalDataset) -> list[EvalQuery]:
    return [EvalQuery(q.query_id, q.text, {k: int(v) for k, v in q.relevant.items()})
            for q in dataset.queries.all().order_by("pk")]


# --- runs -------------------------------------------------------------------------------------------

@transaction.atomic
def eval_run_create(*, dataset: RetrievalDataset, config: RetrievalConfig, collection: Collection | None = None,
                    label: str = "", user=None) -> RetrievalEvalRun:
    collection = collection or dataset.collection
    if collection.team_id != dataset.collection.team_id:
        raise ValidationError({"collection": "Evaluate against a collection of the dataset's team."})
    config.validate()
    run = RetrievalEvalRun.objects.create(
        dataset=dataset, collection=collection, label=(label or "").strip()[:120], config=config.as_dict(),
        progress_total=dataset.query_count,
        created_by=user if getattr(user, "is_authenticated", False) else None)
    audit_record(action="rag.eval_run.create", obj=run, team=collection.team,
                 actor=user if getattr(user, "is_authenticated", False) else None,
                 changes={"dataset": dataset.name, "collection": collection.name, "label": run.label,
                          "config": run.config})
    _send_run(run.pk)
    return run


def _send_run(run_id: int) -> None:
    transaction.on_commit(lambda: task_queue("apps.rag.tasks.retrieval_eval_run_task", run_id))


class _Fenced(Exception):
    pass


def eval_run_execute(run_id: int) -> RetrievalEvalRun | None:
    """Run a queued eval run to the end (the Celery task calls this). Fenced like indexing jobs."""
    token = uuid.uuid4().hex
    now = timezone.now()
    if not RetrievalEvalRun.objects.filter(pk=run_id, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING, run_token=token, attempts=F("attempts") + 1, heartbeat_at=now,
            started_at=Coalesce(F("started_at"), now), error=""):
        return None
    run = RetrievalEvalRun.objects.select_related("dataset", "collection__team",
                                                  "collection__embedding_model__provider",
                                                  "created_by").get(pk=run_id)

    def beat(done: int) -> None:
        if not RetrievalEvalRun.objects.filter(pk=run_id, run_token=token).update(
                progress_done=done, heartbeat_at=timezone.now()):
            raise _Fenced()

    try:
        config = RetrievalConfig.from_dict(run.config)
        queries = dataset_queries(run.dataset)
        actor = run.created_by if run.created_by_id else retrieval.SYSTEM
        runs, samples = leg_runs(run.collection, queries, config, actor=actor, progress=beat)
        outcome = score_runs(queries, runs, config, source_names(run.collection))
        by_id = {q.query_id: q.pk for q in run.dataset.queries.all()}
        with transaction.atomic():
            beat(len(queries))
            RetrievalEvalResult.objects.filter(run=run).delete()
            RetrievalEvalResult.objects.bulk_create([
                RetrievalEvalResult(run=run, query_id=by_id[o.query.query_id], leg=o.leg,
                                    ndcg10=o.metrics["ndcg@10"], recall10=o.metrics["recall@10"],
                                    recall100=o.metrics["recall@100"], mrr10=o.metrics["mrr@10"],
                                    relevant_ranks=o.relevant_ranks, top=o.top)
                for o in outcome.per_query], batch_size=1000)
            RetrievalEvalRun.objects.filter(pk=run_id).update(
                status=JobStatus.SUCCEEDED, metrics=outcome.metrics, finished_at=timezone.now(),
                latency={leg: _summary_ms(s) for leg, s in samples.items() if s})
            run.refresh_from_db()
            audit_record(action="rag.eval_run.finish", obj=run, team=run.collection.team,
                         changes={"metrics": outcome.metrics, "queries": len(queries)})
    except _Fenced:
        return None
    except (OperationalError, InterfaceError):
        RetrievalEvalRun.objects.filter(pk=run_id, run_token=token).update(status=JobStatus.QUEUED, run_token="")
        raise
    except Exception as exc:
        log.exception("retrieval eval run %s failed", run_id)
        with transaction.atomic():
            if RetrievalEvalRun.objects.filter(pk=run_id, run_token=token).update(
                    status=JobStatus.FAILED, error=f"{type(exc).__name__}: {str(exc)[:500]}",
                    finished_at=timezone.now()):
                audit_record(action="rag.eval_run.fail", obj=run, team=run.collection.team,
                             changes={"error": f"{type(exc).__name__}"})
    return RetrievalEvalRun.objects.get(pk=run_id)


def eval_runs_requeue_stuck(*, now=None) -> int:
    now = now or timezone.now()
    cutoff = now - stale_after()
    count = 0
    with transaction.atomic():
        for run in RetrievalEvalRun.objects.select_for_update(skip_locked=True).filter(
                status=JobStatus.RUNNING, heartbeat_at__lt=cutoff).select_related("collection__team"):
            if run.attempts >= MAX_ATTEMPTS:
                run.status, run.error, run.finished_at = JobStatus.FAILED, "The run stopped responding.", now
                run.run_token = ""
                run.save(update_fields=["status", "error", "finished_at", "run_token"])
                audit_record(action="rag.eval_run.fail", obj=run, team=run.collection.team,
                             changes={"reason": "stuck"})
            else:
                run.status, run.run_token, run.heartbeat_at = JobStatus.QUEUED, "", now
                run.save(update_fields=["status", "run_token", "heartbeat_at"])
                _send_run(run.pk)
                audit_record(action="rag.eval_run.requeue", obj=run, team=run.collection.team,
                             changes={"attempts": run.attempts})
            count += 1
    return count
