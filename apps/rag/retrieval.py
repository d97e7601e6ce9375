"""Hybrid retrieval: BM25 computed in PostgreSQL, pgvector cosine over HNSW, fusion, MMR, LLM rerank.

Every leg is one SQL statement that carries the tenant filter (`EXISTS` over the collections the actor may
view, built by `apps.accounts.permissions.restrict`), so a query only ever sees chunks the actor may see,
decided by the database in the same snapshot as the data.

BM25 (Robertson/Lucene form, the one bm25s and Pyserini use):

    score(q, c) = Σ_{t ∈ q}  w(qtf) · idf(t) · tf(t,c)·(k1 + 1) / (tf(t,c) + k1·(1 − b + b·|c| / avgdl))
    idf(t)      = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))

with terms, tf and |c| from `rag_tsvector` (PostgreSQL's `english` configuration — Snowball stemming, stop
words — after splitting words at inner hyphens; migration 0004), N and avgdl from the collection row and df
from rag_term_stat (trigger-kept), all read in one snapshot. Each query term's weight grows with its
repetitions in the query, saturating: w(qtf) = (k3 + 1)·qtf / (k3 + qtf), k3 = 8 (ADR 0042).
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import psycopg
from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction

from apps.accounts.permissions import Action, restrict, restrict_key, user_id_of
from apps.costs.services import UsageContext
from apps.gateway import recording
from apps.llm import calls
from apps.rag.config import RetrievalConfig
from apps.rag.models import Chunk, Collection
from apps.rag.rerank import llm_rerank
from apps.rag.switches import RetrievalOff, retrieval_off

SYSTEM = object()  # actor for trusted internal callers (commands, benchmarks): no tenant filter
EXACT_SEARCH_MAX = 20_000  # a metadata filter matching at most this many chunks is searched exactly
MARK_START, MARK_END = "\x01", "\x02"
QUERY_K3 = 8.0  # saturation of a query term's repetitions (ADR 0042)


@dataclass
class LegHit:
    chunk_id: int
    score: float
    rank: int
    terms: list[str] = field(default_factory=list)


@dataclass
class Hit:
    chunk_id: int
    document_id: int
    source_name: str
    title: str
    heading_path: str
    text: str
    position: int
    char_start: int
    char_end: int
    metadata: dict
    fused_rank: int
    fused_score: float | None = None
    bm25_rank: int | None = None
    bm25_score: float | None = None
    vector_rank: int | None = None
    vector_similarity: float | None = None
    rerank_score: float | None = None
    matched_terms: list[str] = field(default_factory=list)
    highlighted: str = ""  # HTML-escaped text with <mark> around matched words

    @property
    def number(self) -> int:
        return self.fused_rank


@dataclass
class Retrieval:
    query: str
    config: RetrievalConfig
    hits: list[Hit]
    timings: dict[str, float]
    query_terms: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bm25: list[LegHit] = field(default_factory=list)
    vector: list[LegHit] = field(default_factory=list)
    offline: RetrievalOff | None = None  # the collection is switched off (apps/rag/switches.py): no hits


@dataclass(frozen=True)
class Overlay:
    """Chunks of an overlay collection (overlay.py) searched as if they were in the base collection: both legs
    read them besides the base's, and BM25's N, average length and df count them, so every score is the one the
    base would give with them indexed in it (ADR 0120). Only `chunk_ids` count (one attack's planted document)."""

    collection_id: int
    chunk_ids: tuple[int, ...]


# --- tenant filter ----------------------------------------------------------------------------------

TENANT_SQL_KEPT = 4096  # compiled tenant conditions a process keeps
_tenant_sql: OrderedDict[tuple, tuple[str, list]] = OrderedDict()
_tenant_lock = threading.Lock()


def tenant_condition(actor, collection_id: int) -> tuple[str, list]:
    """SQL `EXISTS (…)` true when `actor` may view the collection, with its parameters.

    Compiled by the ORM (`restrict`, ~1-10 ms of CPU) once per process for each `restrict_key` of the actor and
    collection, and kept in a bounded LRU: the text depends only on those facts, the memberships and grants it
    tests are subqueries the database evaluates afresh in every statement (ADR 0047).
    """
    if actor is SYSTEM:
        return "TRUE", []
    facts = restrict_key(actor)
    key = (*facts, int(collection_id)) if facts is not None else None
    if key is not None:
        with _tenant_lock:
            found = _tenant_sql.get(key)
            if found is not None:
                _tenant_sql.move_to_end(key)
                return found
    allowed = restrict(Collection.objects.filter(pk=collection_id), actor, Action.VIEW).values("pk")
    try:
        if allowed.query.is_empty():
            raise EmptyResultSet
        sql, params = allowed.query.sql_with_params()
    except EmptyResultSet:  # a condition that can match nothing (e.g. `pk IN ()` for a token with no teams)
        found = ("FALSE", [])
    else:
        found = (f"EXISTS ({sql})", list(params))
    if key is not None:
        with _tenant_lock:
            _tenant_sql[key] = found
            while len(_tenant_sql) > TENANT_SQL_KEPT:
                _tenant_sql.popitem(last=False)
    return found


def _filter_condition(filters: dict | None, alias: str = "c") -> tuple[str, list]:
    if not filters:
        return "TRUE", []

    return f"{alias}.metadata @> %s::jsonb", [json.dumps(filters)]


# --- BM25 -------------------------------------------------------------------------------------------

def term_postings_limit() -> int:
    """Postings read per query term, in impact order (top-k pruning); 0 reads them all (exact)."""
    return int(settings.RAG_BM25_TERM_POSTINGS)


def query_weight(qtf: str) -> str:
    """SQL for the weight of a query term that occurs `qtf` times in the query: Robertson's saturation
    (k3 + 1)·qtf / (k3 + qtf), 1 for a term said once. A long query (CISI's ~60 words) repeats its main
    terms; counting each term once lost 0.07 nDCG@10 there (ADR 0042)."""
    return f"(({QUERY_K3!r} + 1) * {qtf} / ({QUERY_K3!r} + {qtf}))"


def query_terms(query: str) -> list[str]:
    """The query's lexemes (`rag_tsvector`: the english configuration after splitting at inner hyphens), in
    order of first appearance."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT lexeme FROM unnest(rag_tsvector(%s)) ORDER BY positions[1]", [query])
        return [row[0] for row in cursor.fetchall()]


def bm25_search(*, collection: Collection, query: str, limit: int, actor, k1: float, b: float,
                filters: dict | None = None, term_postings: int | None = None,
                overlay: Overlay | None = None) -> list[LegHit]:
    """The top `limit` chunks by BM25, best first, each with its score and matched terms (bm25_sql)."""
    statement = bm25_sql(collection=collection, query=query, limit=limit, actor=actor, k1=k1, b=b,
                         filters=filters, term_postings=term_postings, overlay=overlay)
    return bm25_hits(run_prepared([statement])[0])


def bm25_hits(rows) -> list[LegHit]:
    return [LegHit(chunk_id=row[0], score=float(row[1]), rank=i, terms=sorted(row[2]))
            for i, row in enumerate(rows, start=1)]


def bm25_sql(*, collection: Collection, query: str, limit: int, actor, k1: float, b: float,
             filters: dict | None = None, term_postings: int | None = None,
             overlay: Overlay | None = None) -> tuple[str, list]:
    """The BM25 leg's statement: the top `limit` chunks, best first, with score and matched terms.

    One statement. The tenant condition gates the collection's statistics row, so an actor who may not
    read the collection gets nothing computed at all. df comes from rag_term_stat (kept by trigger with
    the postings), N and avgdl from the collection row.

    Top-k pruning: each query term contributes its `term_postings` highest-impact postings as candidates
    (all of them when it has fewer, and then the ranking is exact); the best candidates then get the
    weights of the truncated terms they contain, looked up by primary key, so every score returned is the
    exact BM25 score. With a metadata filter every posting of the matching chunks is read (exact).

    With an `overlay`, its chunks join the statistics (N, total length, df) and every posting of them is read
    (they are few): the scores are those of the base with the overlay's chunks indexed in it.
    """
    cid = int(collection.pk)
    m = term_postings_limit() if term_postings is None else int(term_postings)
    if filters:
        m = 0
    k1, b = float(k1), float(b)
    tenant_sql, tenant_params = tenant_condition(actor, cid)
    filter_sql, filter_params = _filter_condition(filters)
    filter_params = filter_params if filters else []

    def weight(tf: str, dl: str) -> str:
        return f"({k1!r} + 1) * {tf} / ({tf} + {k1!r} * (1 - {b!r} + {b!r} * {dl} / stats.avgdl))"

    def matching(collection_id: int) -> str:
        return (f"AND p.chunk_id IN (SELECT c.id FROM rag_chunk c WHERE c.collection_id = {collection_id} "
                f"AND {filter_sql})") if filters else ""

    cut = f"ORDER BY p.impact DESC LIMIT {m}" if m > 0 else ""
    rescore = max(3 * int(limit), 300)
    if overlay is None:
        ov_cte, ov_n, ov_tokens, ov_postings = "", "", "", ""
        params = [query, *tenant_params, *filter_params]
        terms = f"""t AS MATERIALIZED (
            SELECT s.term, q.qw * ln(1 + (stats.n - s.df + 0.5) / (s.df + 0.5)) AS idf,
                   ({m} > 0 AND s.df > {m}) AS truncated
            FROM rag_term_stat s JOIN q ON q.term = s.term CROSS JOIN stats
            WHERE s.collection_id = {cid} AND s.df > 0
        )"""
    else:
        ov_cte, ov_n, ov_tokens, terms, ov_postings = _bm25_overlay_parts(cid, overlay, m, matching)
        ids = [int(i) for i in overlay.chunk_ids]
        params = [query, ids, *tenant_params, ids, *filter_params, ids, *filter_params]  # in the text's order
    sql = f"""
        WITH q AS MATERIALIZED (
            SELECT u.lexeme AS term, {query_weight("coalesce(array_length(u.positions, 1), 1)")} AS qw
            FROM unnest(rag_tsvector(%s)) u
        ), {ov_cte}stats AS MATERIALIZED (
            SELECT (chunk_count::float8{ov_n}) AS n,
                   GREATEST((token_total::float8{ov_tokens}) / GREATEST(chunk_count{ov_n}, 1), 1e-9) AS avgdl
            FROM rag_collection WHERE id = {cid} AND {tenant_sql}
        ), {terms}, h AS (
            SELECT t.term, t.idf, p.chunk_id, p.tf::float8 AS tf, p.dl::float8 AS dl
            FROM t CROSS JOIN LATERAL (
                SELECT p.chunk_id, p.tf, p.dl FROM rag_posting p
                WHERE p.collection_id = {cid} AND p.term = t.term {matching(cid)}
                {cut}
            ) p{ov_postings}
        ), partial AS MATERIALIZED (
            SELECT h.chunk_id, sum(h.idf * {weight("h.tf", "h.dl")}) AS score, array_agg(h.term) AS terms
            FROM h CROSS JOIN stats GROUP BY h.chunk_id
            ORDER BY score DESC, h.chunk_id LIMIT {rescore}
        ), extra AS (
            SELECT partial.chunk_id, sum(t.idf * {weight("p.tf::float8", "p.dl::float8")}) AS score,
                   array_agg(t.term) AS terms
            FROM partial CROSS JOIN t CROSS JOIN stats
            JOIN rag_posting p ON p.chunk_id = partial.chunk_id AND p.term = t.term
            WHERE t.truncated AND NOT (t.term = ANY (partial.terms))
            GROUP BY partial.chunk_id
        )
        SELECT partial.chunk_id, partial.score + coalesce(extra.score, 0) AS score,
               partial.terms || coalesce(extra.terms, '{{}}'::text[]) AS terms
        FROM partial LEFT JOIN extra ON extra.chunk_id = partial.chunk_id
        ORDER BY 2 DESC, 1
        LIMIT {int(limit)}
    """
    return sql, params


def _bm25_overlay_parts(cid: int, overlay: Overlay, m: int, matching) -> tuple[str, str, str, str, str]:
    """The BM25 statement's pieces that read an overlay's chunks as if they were in collection `cid`: their count
    and length (added to N and the total), their df (added to the base's), and all their postings. Each `%s` is
    the overlay's chunk ids (bm25_sql passes them in the text's order)."""
    oid = int(overlay.collection_id)
    ov_cte = f"""ov AS MATERIALIZED (
            SELECT count(*)::float8 AS n, coalesce(sum(bm25_length), 0)::float8 AS tokens FROM rag_chunk
            WHERE collection_id = {oid} AND id = ANY(%s::bigint[])
        ), """
    df = "(coalesce(s.df, 0) + coalesce(o.df, 0))"
    terms = f"""odf AS MATERIALIZED (
            SELECT p.term, count(*)::float8 AS df FROM rag_posting p JOIN q ON q.term = p.term
            WHERE p.collection_id = {oid} AND p.chunk_id = ANY(%s::bigint[]) GROUP BY p.term
        ), t AS MATERIALIZED (
            SELECT q.term, q.qw * ln(1 + (stats.n - {df} + 0.5) / ({df} + 0.5)) AS idf,
                   ({m} > 0 AND coalesce(s.df, 0) > {m}) AS truncated
            FROM q CROSS JOIN stats
            LEFT JOIN rag_term_stat s ON s.collection_id = {cid} AND s.term = q.term
            LEFT JOIN odf o ON o.term = q.term
            WHERE {df} > 0
        )"""
    postings = f"""
            UNION ALL
            SELECT t.term, t.idf, p.chunk_id, p.tf::float8, p.dl::float8
            FROM t JOIN rag_posting p ON p.term = t.term
            WHERE p.collection_id = {oid} AND p.chunk_id = ANY(%s::bigint[]) {matching(oid)}"""
    return ov_cte, " + (SELECT n FROM ov)", " + (SELECT tokens FROM ov)", terms, postings


# --- vector -----------------------------------------------------------------------------------------

def vector_literal(vector) -> str:
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


def vector_search(*, collection: Collection, vector, limit: int, actor, ef_search: int = 100,
                  filters: dict | None = None, exact: bool = False, notes: list | None = None) -> list[LegHit]:
    """The `limit` nearest chunks by cosine similarity, best first.

    Uses the collection's partial HNSW index with hnsw.ef_search = max(ef_search, limit). pgvector 0.6
    filters after the index scan, so a metadata filter is not allowed to starve the result: a filter
    matching few chunks is searched exactly; otherwise the scan over-fetches in proportion to the filter's
    selectivity and falls back to exact search if it still comes back short.
    """
    notes = notes if notes is not None else []
    plan = vector_plan(collection=collection, vector=vector, limit=limit, ef_search=ef_search, filters=filters,
                       exact=exact, notes=notes)
    if plan is None:
        return []
    hits = _vector_query(plan, actor)
    return vector_short_fallback(plan, hits, actor, notes)


@dataclass(frozen=True)
class VectorPlan:
    """How the vector leg runs one query: the statement's inputs once a metadata filter has been weighed."""

    cid: int
    dims: int
    literal: str
    limit: int
    ef_search: int
    filters: dict | None
    exact: bool


def vector_plan(*, collection: Collection, vector, limit: int, ef_search: int, filters: dict | None, exact: bool,
                notes: list) -> VectorPlan | None:
    """The vector leg's plan, or None when a metadata filter matches no chunk (nothing to search)."""
    cid = int(collection.pk)
    dims = int(collection.embedding_dimensions)
    if len(vector) != dims:
        raise ValueError(f"The query vector has {len(vector)} dimensions; the collection stores {dims}.")
    if filters and not exact:
        matching = _count_matching(cid, filters)
        if matching == 0:
            return None
        if matching <= EXACT_SEARCH_MAX:
            notes.append(f"metadata filter matches {matching} chunks: exact vector search")
            exact = True
        else:
            share = matching / max(collection.chunk_count, 1)
            ef_search = min(1000, max(ef_search, math.ceil(limit / max(share, 1e-6) * 1.5)))
            notes.append(f"metadata filter matches {share:.0%} of chunks: ef_search raised to {ef_search}")
    return VectorPlan(cid=cid, dims=dims, literal=vector_literal(vector), limit=int(limit),
                      ef_search=max(int(ef_search), int(limit)), filters=filters, exact=exact)


def vector_short_fallback(plan: VectorPlan, hits: list[LegHit], actor, notes: list) -> list[LegHit]:
    """Under a metadata filter the index scan can come back short (pgvector filters after the scan): then the
    leg is searched exactly."""
    if plan.filters and not plan.exact and len(hits) < plan.limit and len(hits) < _count_matching(plan.cid,
                                                                                                   plan.filters):
        notes.append("the index scan came back short under the filter: exact vector search")
        return _vector_query(dataclasses.replace(plan, exact=True), actor)
    return hits


def _count_matching(cid: int, filters: dict) -> int:
    filter_sql, filter_params = _filter_condition(filters)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM rag_chunk c WHERE c.collection_id = {cid} AND {filter_sql}",
                       filter_params)
        return cursor.fetchone()[0]


def overlay_vector_sql(plan: VectorPlan, overlay: Overlay, actor) -> tuple[str, list]:
    """The overlay's chunks for the vector leg, searched exactly (they are few), under the base's tenant condition."""
    tenant_sql, tenant_params = tenant_condition(actor, plan.cid)
    filter_sql, filter_params = _filter_condition(plan.filters)
    distance = f"(c.embedding::vector({plan.dims}) <=> %s::vector({plan.dims}))"
    sql = f"""
        SELECT c.id, 1 - {distance} AS similarity FROM rag_chunk c
        WHERE c.collection_id = {int(overlay.collection_id)} AND c.id = ANY(%s::bigint[])
          AND c.embedding IS NOT NULL AND {filter_sql} AND {tenant_sql}
        ORDER BY {distance} + 0, c.id LIMIT %s
    """
    return sql, [plan.literal, [int(i) for i in overlay.chunk_ids], *filter_params, *tenant_params, plan.literal,
                 plan.limit]


def merge_vector_hits(base: list[LegHit], extra: list[LegHit], limit: int) -> list[LegHit]:
    """One vector leg from the base's hits and the overlay's: by similarity (the base first on a tie), re-ranked."""
    merged = sorted([*base, *extra], key=lambda hit: -hit.score)[:limit]
    return [dataclasses.replace(hit, rank=i) for i, hit in enumerate(merged, start=1)]


def vector_sql(cid: int, dims: int, literal: str, limit: int, actor, filters: dict | None, exact: bool
               ) -> tuple[str, list]:
    """The vector leg's statement. Approximate: ORDER BY exactly the partial index's expression and nothing
    else (a second sort key would make PostgreSQL sort the whole collection instead of walking the HNSW
    graph). Exact: `+ 0` makes the ORDER BY an expression the index cannot serve, so every row is scored."""
    tenant_sql, tenant_params = tenant_condition(actor, cid)
    filter_sql, filter_params = _filter_condition(filters)
    distance = f"(c.embedding::vector({dims}) <=> %s::vector({dims}))"
    order = f"{distance} + 0, c.id" if exact else distance
    sql = f"""
        SELECT c.id, 1 - {distance} AS similarity FROM rag_chunk c
        WHERE c.collection_id = {int(cid)} AND c.embedding IS NOT NULL AND {filter_sql} AND {tenant_sql}
        ORDER BY {order} LIMIT %s
    """
    return sql, [literal, *filter_params, *tenant_params, literal, int(limit)]


# hnsw.ef_search for the transaction; and a prepared vector statement runs its generic plan (PostgreSQL would
# otherwise re-plan it for each new vector, ~1 ms with the tenant condition; the plan is the same index scan).
EF_SEARCH_SQL = ("SELECT set_config('hnsw.ef_search', %s, true), "
                 "set_config('plan_cache_mode', 'force_generic_plan', true)")


def _vector_statements(plan: VectorPlan, actor) -> list[tuple[str, list]]:
    """hnsw.ef_search for this transaction, then the vector leg's statement."""
    sql, params = vector_sql(plan.cid, plan.dims, plan.literal, plan.limit, actor, plan.filters, plan.exact)
    return [(EF_SEARCH_SQL, [str(plan.ef_search)]), (sql, params)]


def vector_hits(rows) -> list[LegHit]:
    return [LegHit(chunk_id=row[0], score=float(row[1]), rank=i) for i, row in enumerate(rows, start=1)]


def _vector_query(plan: VectorPlan, actor) -> list[LegHit]:
    return vector_hits(run_prepared(_vector_statements(plan, actor))[-1])


# --- one round trip ---------------------------------------------------------------------------------

def run_statements(statements: list[tuple[str, list]]) -> list[list[tuple]]:
    """Each statement's rows, the statements run in one transaction and, where the connection binds
    parameters on the client (Django's default with psycopg 3), sent in ONE round trip: one simple-protocol
    query, which PostgreSQL runs as one implicit transaction, so a `set_config(..., true)` holds for the
    statements after it. Each statement keeps its own tenant condition (ADR 0047)."""
    with connection.cursor() as cursor:
        if len(statements) == 1:  # one statement: its own implicit transaction, one round trip
            cursor.execute(*statements[0])
            return [cursor.fetchall() if cursor.description is not None else []]
        if isinstance(cursor.cursor, psycopg.ClientCursor):
            cursor.execute(";\n".join(sql for sql, _ in statements),
                           [param for _, params in statements for param in params])
            out = []
            while True:
                out.append(cursor.fetchall() if cursor.description is not None else [])
                if not cursor.nextset():
                    return out
    with transaction.atomic(), connection.cursor() as cursor:  # server-side binding: one statement at a time
        out = []
        for sql, params in statements:
            cursor.execute(sql, params)
            out.append(cursor.fetchall() if cursor.description is not None else [])
        return out


def run_prepared(statements: list[tuple[str, list]]) -> list[list[tuple]]:
    """Each statement's rows, like run_statements, with the parameters bound on the server and each statement
    prepared on the connection (psycopg's prepared-statement cache, per connection): PostgreSQL plans the text
    once per connection and then runs its generic plan, where planning the BM25 statement and the tenant
    condition's permission subqueries cost more than running them (ADR 0128). Several statements go in one
    psycopg pipeline: one round trip, and one implicit transaction, so a `set_config(..., true)` holds for
    the statements after it. RAG_PREPARED_STATEMENTS=false (e.g. behind a pooler in transaction mode that
    keeps no prepared statements) runs them with run_statements instead."""
    if not settings.RAG_PREPARED_STATEMENTS:
        return run_statements(statements)
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:  # Django leaves it off; its own cursors bind client-side, never prepare
        raw.prepare_threshold = 0
    wrap = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
    cursors = [wrap(psycopg.Cursor(raw)) for _ in statements]
    try:
        with connection.wrap_database_errors, raw.pipeline():
            for cursor, (sql, params) in zip(cursors, statements, strict=True):
                cursor.execute(sql, params)
        return [cursor.fetchall() if cursor.description is not None else [] for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()


def search_legs(*, collection: Collection, query: str, vector, limit: int, actor, config: RetrievalConfig,
                notes: list, overlay: Overlay | None = None) -> tuple[list[LegHit], list[LegHit]]:
    """The BM25 leg (when `query` has text) and the vector leg (when `vector` is given) in one round trip;
    the same statements, tenant conditions and results as bm25_search and vector_search one after the other.
    With an `overlay`, both legs read its chunks too, as if they were in the collection."""
    statements: list[tuple[str, list]] = []
    if query:
        statements.append(bm25_sql(collection=collection, query=query, limit=limit, actor=actor, k1=config.k1,
                                   b=config.b, filters=config.filters, overlay=overlay))
    plan = None
    if vector is not None:
        plan = vector_plan(collection=collection, vector=vector, limit=limit, ef_search=config.ef_search,
                           filters=config.filters, exact=False, notes=notes)
        if plan is not None:
            statements.extend(_vector_statements(plan, actor))
            if overlay is not None:
                statements.append(overlay_vector_sql(plan, overlay, actor))
    if not statements:
        return [], []
    results = run_prepared(statements)
    bm25 = bm25_hits(results[0]) if query else []
    vector_legs: list[LegHit] = []
    if plan is not None:
        base_rows = results[-2] if overlay is not None else results[-1]
        vector_legs = vector_short_fallback(plan, vector_hits(base_rows), actor, notes)
        if overlay is not None:
            vector_legs = merge_vector_hits(vector_legs, vector_hits(results[-1]), plan.limit)
    return bm25, vector_legs


# --- fusion -----------------------------------------------------------------------------------------

def fuse_rrf(legs: dict[str, list[LegHit]], *, k: int = 60, weights: dict[str, float] | None = None
             ) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion: Σ_leg w_leg / (k + rank). Ties broken by chunk id."""
    weights = weights or {}
    scores: dict[int, float] = {}
    for name, hits in legs.items():
        w = weights.get(name, 1.0)
        if w <= 0:
            continue
        for hit in hits:
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + w / (k + hit.rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _minmax(hits: list[LegHit]) -> dict[int, float]:
    if not hits:
        return {}
    top = max(h.score for h in hits)
    low = min(h.score for h in hits)
    span = top - low
    return {h.chunk_id: (h.score - low) / span if span > 0 else 1.0 for h in hits}


def fuse_convex(bm25: list[LegHit], vector: list[LegHit], *, alpha: float) -> list[tuple[int, float]]:
    """α·vector + (1−α)·BM25, each min-max normalised over its candidates; absent from a leg counts 0."""
    nb, nv = _minmax(bm25), _minmax(vector)
    scores = {cid: (1 - alpha) * nb.get(cid, 0.0) + alpha * nv.get(cid, 0.0) for cid in nb.keys() | nv.keys()}
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _zscores(hits: list[LegHit]) -> tuple[dict[int, float], float]:
    """Each candidate's (score − mean) / standard deviation over the leg's candidates, and the lowest of them
    (what a chunk the leg did not return counts: no better than its worst candidate)."""
    if not hits:
        return {}, 0.0
    scores = np.asarray([h.score for h in hits], dtype=np.float64)
    spread = float(scores.std())
    z = (scores - scores.mean()) / spread if spread > 0 else np.zeros_like(scores)
    return {h.chunk_id: float(v) for h, v in zip(hits, z, strict=True)}, float(z.min())


def fuse_zscore(bm25: list[LegHit], vector: list[LegHit], *, alpha: float) -> list[tuple[int, float]]:
    """α·vector + (1−α)·BM25 on z-scores over each leg's candidates; absent from a leg counts that leg's lowest.

    Unlike min-max, one outlying top score does not squash the rest of its leg, and the leg whose top stands
    further out of its candidates (the more confident one, for this query) weighs more: the query-adaptive
    weighting comes from the score distribution itself (ADR 0042)."""
    (zb, floor_b), (zv, floor_v) = _zscores(bm25), _zscores(vector)
    scores = {cid: (1 - alpha) * zb.get(cid, floor_b) + alpha * zv.get(cid, floor_v) for cid in zb.keys() | zv.keys()}
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def fuse(config: RetrievalConfig, bm25: list[LegHit], vector: list[LegHit]) -> list[tuple[int, float]]:
    """The ranking the configured mode gives: one leg's, or the fusion of both."""
    if config.mode == "bm25":
        return [(h.chunk_id, h.score) for h in bm25]
    if config.mode == "vector":
        return [(h.chunk_id, h.score) for h in vector]
    if config.fusion == "rrf":
        return fuse_rrf({"bm25": bm25, "vector": vector}, k=config.rrf_k,
                        weights={"bm25": config.bm25_weight, "vector": config.vector_weight})
    if config.fusion == "zscore":
        return fuse_zscore(bm25, vector, alpha=config.alpha)
    return fuse_convex(bm25, vector, alpha=config.alpha)


def mmr(ranked: list[tuple[int, float]], vectors: dict[int, np.ndarray], *, k: int, lam: float
        ) -> list[tuple[int, float]]:
    """Maximal marginal relevance over `ranked` (relevance min-max normalised), picking `k`."""
    candidates = [(cid, s) for cid, s in ranked if cid in vectors]
    if not candidates:
        return ranked[:k]
    scores = [s for _, s in candidates]
    low, top = min(scores), max(scores)
    rel = {cid: (s - low) / (top - low) if top > low else 1.0 for cid, s in candidates}
    chosen: list[tuple[int, float]] = []
    remaining = list(candidates)
    while remaining and len(chosen) < k:
        def gain(item):
            cid = item[0]
            redundancy = max((float(vectors[cid] @ vectors[c]) for c, _ in chosen), default=0.0)
            return lam * rel[cid] - (1 - lam) * redundancy

        best = max(remaining, key=gain)
        chosen.append(best)
        remaining.remove(best)
    return chosen


# --- the whole query --------------------------------------------------------------------------------

def embed_query(collection: Collection, texts: list[str], *, feature: str = "rag.query", user_id=None,
                record_later: bool = False):
    """Query vectors through the one model call path (usage recorded with source rag). `record_later`: the
    usage event goes through the recording queue the ledger writer drains instead of being written in this
    request (a query's request path, ADR 0047)."""
    context = UsageContext(source="rag", team_id=collection.team_id, collection_id=collection.pk,
                           feature=feature, user_id=user_id)
    # By name: the route comes from the process's route cache with its price book (a Model instance would be
    # priced by two queries per call); an alias can never take a catalog model's name.
    return calls.embed(model=collection.embedding_model.name, texts=texts, context=context,
                       recorder=recording.queue_record if record_later else None).vectors


def retrieve(*, collection: Collection, query: str, actor, config: RetrievalConfig | None = None,
             query_vector=None, explain: bool = True, overlay: Overlay | None = None) -> Retrieval:
    """Run the configured legs for one query; hits carry every leg's rank and score.

    `explain` adds what the playground shows besides ranks and scores: matched words highlighted in each
    hit (ts_headline) and the query's lexemes. Machines (the API's search, eval runs) can skip it.
    `overlay`: chunks of an overlay searched as if they were in the collection (overlay.py, ADR 0120).
    """
    config = config or RetrievalConfig.from_dict(collection.retrieval)
    if (off := retrieval_off(collection)) is not None:
        return Retrieval(query=(query or "").strip(), config=config, hits=[], timings={}, notes=[off.message],
                         offline=off)
    timings: dict[str, float] = {}
    notes: list[str] = []
    started = time.perf_counter()
    query = (query or "").strip()
    bm25: list[LegHit] = []
    vector: list[LegHit] = []
    pool = config.pool if config.mode == "hybrid" else config.k if not (config.mmr or config.rerank) else config.pool
    embedding = config.mode in ("vector", "hybrid") and bool(query) and query_vector is None
    keywords_first = embedding and config.mode == "hybrid"
    if keywords_first:  # the model runs on its thread while the keyword leg runs in the database (ADR 0128)
        calls.embed_ahead(model=collection.embedding_model.name, texts=[query])
        t = time.perf_counter()
        bm25, _ = search_legs(collection=collection, query=query, vector=None, limit=pool, actor=actor,
                              config=config, notes=notes, overlay=overlay)
        timings["bm25_ms"] = _ms(t)
    if embedding:
        t = time.perf_counter()
        query_vector = embed_query(collection, [query], user_id=user_id_of(actor), record_later=True)[0]
        timings["embed_ms"] = _ms(t)  # after the keyword leg: what the model had left to do
    if query:
        t = time.perf_counter()
        legs = search_legs(collection=collection, query=query if config.mode != "vector" and not keywords_first else "",
                           vector=query_vector if config.mode != "bm25" else None, limit=pool, actor=actor,
                           config=config, notes=notes, overlay=overlay)
        bm25, vector = (bm25 if keywords_first else legs[0]), legs[1]
        timings["vector_ms" if keywords_first else "search_ms"] = _ms(t)  # else both legs in one round trip
        if keywords_first:
            timings["search_ms"] = round(timings["bm25_ms"] + timings["vector_ms"], 2)
    t = time.perf_counter()
    ranked = fuse(config, bm25, vector)
    timings["fusion_ms"] = _ms(t)
    if config.mmr and ranked:
        t = time.perf_counter()
        head = ranked[: max(config.k * 4, 20)]
        ranked = mmr(head, _vectors_of(collection, [cid for cid, _ in head], overlay), k=config.k,
                     lam=config.mmr_lambda)
        timings["mmr_ms"] = _ms(t)
    rerank_scores: dict[int, float] = {}
    if config.rerank and ranked:
        t = time.perf_counter()
        ranked, rerank_scores, note = llm_rerank(collection, query, ranked[: max(config.k * 3, 10)], actor=actor)
        if note:
            notes.append(note)
        timings["rerank_ms"] = _ms(t)
    t = time.perf_counter()
    hits = hydrate(ranked[: config.k], bm25=bm25, vector=vector, rerank=rerank_scores)
    timings["fetch_ms"] = _ms(t)
    if explain:
        t = time.perf_counter()
        highlight(hits)
        timings["highlight_ms"] = _ms(t)
    timings["total_ms"] = _ms(started)
    terms = query_terms(query) if query and explain else []
    return Retrieval(query=query, config=config, hits=hits, timings=timings, query_terms=terms, notes=notes,
                     bm25=bm25, vector=vector)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _vectors_of(collection: Collection, chunk_ids: list[int], overlay: Overlay | None = None
                ) -> dict[int, np.ndarray]:
    collections = [collection.pk] if overlay is None else [collection.pk, overlay.collection_id]
    rows = Chunk.objects.filter(collection_id__in=collections, pk__in=chunk_ids).values_list("pk", "embedding")
    return {pk: np.asarray(vec, dtype=np.float32) for pk, vec in rows if vec is not None}


HYDRATE_SQL = (
    "SELECT c.id, c.document_id, d.source_name, d.title, c.heading_path, c.text, c.position, c.char_start, "
    "c.char_end, c.metadata FROM rag_chunk c JOIN rag_document d ON d.id = c.document_id WHERE c.id = ANY(%s)"
)


def hydrate(ranked: list[tuple[int, float]], *, bm25: list[LegHit], vector: list[LegHit],
            rerank: dict[int, float] | None = None) -> list[Hit]:
    """Hits in `ranked` order with their chunk, document and per-leg ranks: one statement for exactly the
    columns a hit shows (no model instances: a query's last round trip)."""
    if not ranked:
        return []
    with connection.cursor() as cursor:
        cursor.execute(HYDRATE_SQL, [[cid for cid, _ in ranked]])
        rows = {row[0]: row for row in cursor.fetchall()}
    by_bm25 = {h.chunk_id: h for h in bm25}
    by_vector = {h.chunk_id: h for h in vector}
    hits = []
    for rank, (cid, score) in enumerate(ranked, start=1):
        row = rows.get(cid)
        if row is None:  # deleted between the search and now
            continue
        _, document_id, source_name, title, heading_path, text, position, char_start, char_end, metadata = row
        b, v = by_bm25.get(cid), by_vector.get(cid)
        hits.append(Hit(
            chunk_id=cid, document_id=document_id, source_name=source_name, title=title, heading_path=heading_path,
            text=text, position=position, char_start=char_start, char_end=char_end,
            metadata=json.loads(metadata) if isinstance(metadata, str | bytes) else metadata, fused_rank=rank,
            fused_score=score, bm25_rank=b.rank if b else None, bm25_score=b.score if b else None,
            vector_rank=v.rank if v else None, vector_similarity=v.score if v else None,
            rerank_score=(rerank or {}).get(cid), matched_terms=b.terms if b else [],
        ))
    return hits


def highlight(hits: list[Hit]) -> None:
    """Mark the words whose lexemes matched (PostgreSQL's ts_headline with the same configuration)."""
    todo = [h for h in hits if h.matched_terms]
    for hit in hits:
        hit.highlighted = html.escape(hit.text)
    if not todo:
        return
    queries = [" | ".join("'" + t.replace("'", "''") + "'" for t in hit.matched_terms) for hit in todo]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT ts_headline('english', t.body, t.q::tsquery, %s) "
            "FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS t(body, q, n) ORDER BY t.n",
            [f"HighlightAll=true, StartSel={MARK_START}, StopSel={MARK_END}", [h.text for h in todo], queries],
        )
        for hit, (marked,) in zip(todo, cursor.fetchall(), strict=True):
            escaped = html.escape(marked)
            hit.highlighted = escaped.replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")


