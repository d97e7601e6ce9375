"""Query latency after the model (issue #18): per leg with and without the query embedding, the API against the
service call, and the same over a ~100,000-chunk collection of REAL text with REAL MiniLM embeddings.

    python -m bench.rag_query embed [--target 100000]   # resumable; writes .portal/bench_rag_query/
    python -m bench.rag_query load                      # load (append) what is embedded so far
    python -m bench.rag_query [--queries 200] [--max-chunks N] [--reload]

`embed` splits the SciFact, CISI and MED corpora (SCIFACT_DIR, CISI_DIR, MED_DIR as for bench.rag_collections) into
sentence-size chunks (titles are chunks of their own), then, to reach the target without repeating any text,
adds two-sentence windows over the same documents. Every text is embedded with the portal's own embedder
(apps/llm/offline/embeddings.embed, whatever runtime it has on this branch) in shards of 2,000 that are
kept, so a run stopped on a loaded machine resumes where it stopped; the default run loads however many
shards exist (say so when it is below the target).

The default run:
- SciFact (imported with `rag_import_beir` into the bench database the first time): the 300 test queries,
  each leg timed through `apps.rag.retrieval`, the query embedding through the one call path (`calls.embed`,
  usage event and all) with the process's query LRU cleared so every query runs the model; the model's own
  share (`embeddings.embed` alone) separately, so it can be added to the model runtime's figure; the API
  (`POST /api/v1/rag/collections/{id}/search`) in process through Django's test client with a real token,
  against the service call the view makes.
- the real-text collection: hybrid with the embedding, as a member (real tenant subquery), p50/p95.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bench.rag_collections import beir_dirs
from bench.rag_common import BASE_DIR, load_average, log

SHARD = 2000
REAL_NAME = "real-text-100k"
SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=[A-Za-z0-9(\[])")


def work_dir() -> Path:
    path = BASE_DIR / ".portal" / "bench_rag_query"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sentences(text: str) -> list[str]:
    """Sentence-size pieces: split at sentence ends; a piece over 60 words is cut into ~40-word runs."""
    out = []
    for part in SENTENCE_END.split(text or ""):
        words = part.split()
        if len(words) < 3:
            continue
        if len(words) <= 60:
            out.append(" ".join(words))
        else:
            step = 40
            out.extend(" ".join(words[i:i + step]) for i in range(0, len(words), step) if len(words[i:i + step]) >= 3)
    return out


def corpus_chunks(target: int) -> list[tuple[str, str, str]]:
    """(collection, document id, text): every sentence of the three corpora first, then two-sentence windows
    until `target`; no text twice."""
    docs = []
    for folder in beir_dirs(None):
        name = folder.name
        with open(folder / "corpus.jsonl") as handle:
            for line in handle:
                row = json.loads(line)
                docs.append((name, str(row["_id"]), (row.get("title") or "").strip(), sentences(row.get("text", ""))))
    seen: set[str] = set()
    chunks: list[tuple[str, str, str]] = []

    def add(name, doc_id, text):
        if text and text not in seen:
            seen.add(text)
            chunks.append((name, doc_id, text))

    for name, doc_id, title, parts in docs:
        add(name, doc_id, title)
        for part in parts:
            add(name, doc_id, part)
    for name, doc_id, _title, parts in docs:
        for i in range(len(parts) - 1):
            if len(chunks) >= target:
                return chunks
            add(name, doc_id, parts[i] + " " + parts[i + 1])
    return chunks[:target]


def embed_corpus(target: int) -> None:
    """Embed the chunks shard by shard into work_dir(); shards already there are kept."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(BASE_DIR))
    from apps.llm.offline import embeddings

    chunks = corpus_chunks(target)
    out = work_dir()
    (out / "chunks.json").write_text(json.dumps(chunks))
    log(f"{len(chunks)} chunks; embedding in shards of {SHARD} into {out}")
    started = time.perf_counter()
    done = 0
    for index, start in enumerate(range(0, len(chunks), SHARD)):
        path = out / f"shard-{index:04d}.npy"
        if path.exists():
            continue
        t = time.perf_counter()
        texts = [text for _, _, text in chunks[start:start + SHARD]]
        vectors = np.asarray(embeddings.embed(texts).vectors, dtype=np.float32)
        np.save(path.with_suffix(".tmp.npy"), vectors)
        os.replace(path.with_suffix(".tmp.npy"), path)
        done += len(texts)
        log(f"  shard {index}: {len(texts)} chunks in {time.perf_counter() - t:.1f} s "
            f"({done / (time.perf_counter() - started):.1f} chunks/s overall, load {load_average()})")
    log("done")


# --- the real-text collection ---------------------------------------------------------------------

def shards_ready() -> int:
    """How many shards exist, counted from the first (a run stopped early leaves a contiguous prefix)."""
    n = 0
    while (work_dir() / f"shard-{n:04d}.npy").exists():
        n += 1
    return n


def ensure_real(max_chunks: int, reload: bool, index: bool = True) -> tuple[object, dict]:
    """The real-text collection with min(max_chunks, embedded chunks) chunks, loaded through the portal's own
    posting writer (`indexing.write_postings`) and reused; shards embedded since the last run are appended,
    and the HNSW index is (re)built after loading."""
    from django.db import connection

    from apps.accounts.models import Team
    from apps.core.request_context import acting_as
    from apps.rag.indexing import write_postings
    from apps.rag.models import Chunk, Collection, Document, DocumentStatus
    from apps.rag.services import collection_create, collection_delete, create_hnsw_index, drop_hnsw_index

    chunks = json.loads((work_dir() / "chunks.json").read_text())
    n = min(max_chunks, shards_ready() * SHARD, len(chunks))
    collection = Collection.objects.filter(name=REAL_NAME, team__slug="search").first()
    if collection is not None and (reload or collection.chunk_count > n or collection.chunk_count % SHARD):
        with acting_as(None):
            collection_delete(collection=collection)
        collection = None
    if collection is not None and collection.chunk_count == n and (not index or _has_index(collection)):
        return collection, {"reused": True}
    if collection is None:
        with acting_as(None):
            collection = collection_create(team=Team.objects.get(slug="search"), name=REAL_NAME,
                                           embedding_model="local-minilm", chunking={"strategy": "whole"})
    start = collection.chunk_count
    build: dict = {"appended_from": start}
    started = time.perf_counter()
    drop_hnsw_index(collection)
    chunks = chunks[:n]
    sources = sorted({f"{name}/{doc}" for name, doc, _ in chunks})
    have = set(Document.objects.filter(collection=collection).values_list("source_name", flat=True))
    Document.objects.bulk_create([Document(collection=collection, source_name=src, format="txt", content=b"",
                                           content_hash=f"{i:064d}", status=DocumentStatus.INDEXED)
                                  for i, src in enumerate(sources) if src not in have], batch_size=5000)
    doc_ids = dict(Document.objects.filter(collection=collection).values_list("source_name", "pk"))
    positions: dict[str, int] = {}
    located = []
    for name, doc, text in chunks:  # every chunk's position within its document, counted from the start
        src = f"{name}/{doc}"
        positions[src] = positions.get(src, -1) + 1
        located.append((src, positions[src], text))
    total_tokens = collection.token_total
    for shard in range(start, n, SHARD):
        vectors = np.load(work_dir() / f"shard-{shard // SHARD:04d}.npy")
        rows = [Chunk(collection_id=collection.pk, document_id=doc_ids[src], position=position, text=text,
                      char_end=len(text), token_count=len(text.split()), embedding=vector)
                for (src, position, text), vector in zip(located[shard:shard + SHARD], vectors, strict=False)]
        created = Chunk.objects.bulk_create(rows, batch_size=SHARD)
        total_tokens += write_postings(collection.pk, [c.pk for c in created], [c.text for c in created])
        Collection.objects.filter(pk=collection.pk).update(chunk_count=shard + len(rows), token_total=total_tokens)
        log(f"  {shard + len(rows)} chunks loaded")
    build["load_s"] = round(time.perf_counter() - started, 1)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE rag_chunk")
        cursor.execute("ANALYZE rag_posting")
        cursor.execute("ANALYZE rag_term_stat")
        cursor.execute("SET maintenance_work_mem = '1GB'")
    collection.refresh_from_db()
    if index:
        t = time.perf_counter()
        create_hnsw_index(collection)
        build["hnsw_build_s"] = round(time.perf_counter() - t, 1)
    return collection, build


def _has_index(collection) -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [collection.hnsw_index_name])
        return cursor.fetchone() is not None


# --- measuring -------------------------------------------------------------------------------------

def _p(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"p50": round(statistics.median(ordered), 2),
            "p95": round(ordered[max(0, int(0.95 * len(ordered)) - 1)], 2), "n": len(ordered)}


def _forget_queries() -> None:
    """Empty this process's query-embedding LRU, so every query runs the model."""
    from apps.llm.offline import embeddings

    cache = getattr(embeddings, "_query_cache", None)
    if cache is not None:
        cache.clear()


def measure(collection, texts: list[str], actor, secret: str | None) -> dict:
    """Each query in turn through every variant (alternated, so load drifts hit them alike)."""
    import inspect

    from django.test import Client

    from apps.llm.offline import embeddings
    from apps.rag import retrieval
    from apps.rag.config import RetrievalConfig

    config = RetrievalConfig.from_dict(collection.retrieval)
    later = "record_later" in inspect.signature(retrieval.embed_query).parameters
    queued = {"record_later": True} if later else {}
    client = Client()
    url = f"/api/v1/rag/collections/{collection.pk}/search"
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret else {}
    s: dict[str, list[float]] = {}

    def timed(name, call):
        t = time.perf_counter()
        value = call()
        s.setdefault(name, []).append((time.perf_counter() - t) * 1000)
        return value

    def one_query(text: str) -> None:
        _forget_queries()
        timed("model_only_ms", lambda: embeddings.embed([text]))
        _forget_queries()
        timed("embed_step_ledger_now_ms", lambda: retrieval.embed_query(collection, [text], user_id=actor.pk))
        _forget_queries()
        vector = timed("embed_step_ms", lambda: retrieval.embed_query(collection, [text], user_id=actor.pk,
                                                                        **queued))[0]
        timed("bm25_leg_ms", lambda: retrieval.bm25_search(collection=collection, query=text, limit=config.pool,
                                                           actor=actor, k1=config.k1, b=config.b))
        timed("vector_leg_ms", lambda: retrieval.vector_search(collection=collection, vector=vector,
                                                               limit=config.pool, actor=actor,
                                                               ef_search=config.ef_search))
        result = timed("hybrid_without_embedding_ms", lambda: retrieval.retrieve(
            collection=collection, query=text, actor=actor, config=config, query_vector=vector, explain=False))
        for name in ("search_ms", "bm25_ms", "vector_ms", "fusion_ms", "fetch_ms"):
            if name in result.timings:
                s.setdefault(f"step_{name}", []).append(result.timings[name])
        _forget_queries()
        timed("hybrid_with_embedding_ms", lambda: retrieval.retrieve(collection=collection, query=text, actor=actor,
                                                                     config=config, explain=False))
        if secret:
            _forget_queries()
            response = timed("api_ms", lambda: client.post(url, {"query": text}, content_type="application/json",
                                                           **headers))
            assert response.status_code == 200, response.content[:300]
            inside = response.json()["timings_ms"]["total_ms"]
            s.setdefault("api_service_total_ms", []).append(inside)
            s.setdefault("api_minus_service_ms", []).append(s["api_ms"][-1] - inside)

    for i, text in enumerate([*texts[:5], *texts]):
        if i == 5:
            s.clear()  # the first five warmed the caches
        one_query(text)
    trips = {"hybrid_with_embedding": round_trips(lambda: retrieval.retrieve(
        collection=collection, query=texts[0] + " again", actor=actor, config=config, explain=False))}
    if secret:
        trips["api_search"] = round_trips(lambda: client.post(url, {"query": texts[1] + " again"},
                                                              content_type="application/json", **headers))
    return {"queries": len(texts), "chunks": collection.chunk_count, "record_later": later,
            "round_trips": trips, **{name: _p(v) for name, v in s.items()}}


def round_trips(call) -> dict:
    """Database statements (each execute is one round trip; BEGIN/COMMIT of a transaction counted apart) and
    Redis round trips (a command, or a pipeline) of one call, counted rather than timed: what load cannot blur."""
    import redis
    from django.db import connection

    counts = {"db_statements": 0, "db_transactions": 0, "redis": 0}

    def on_db(execute, sql, params, many, context):
        counts["db_statements"] += 1
        return execute(sql, params, many, context)

    plain, piped = redis.Redis.execute_command, redis.client.Pipeline.execute

    def on_command(self, *args, **kwargs):
        if not isinstance(self, redis.client.Pipeline):
            counts["redis"] += 1
        return plain(self, *args, **kwargs)

    def on_pipeline(self, *args, **kwargs):
        counts["redis"] += 1
        return piped(self, *args, **kwargs)

    commit = connection._commit

    def on_commit():  # a transaction: BEGIN and COMMIT are two more round trips
        counts["db_transactions"] += 1
        return commit()

    redis.Redis.execute_command, redis.client.Pipeline.execute = on_command, on_pipeline
    connection._commit = on_commit
    try:
        with connection.execute_wrapper(on_db):
            _forget_queries()
            call()
    finally:
        redis.Redis.execute_command, redis.client.Pipeline.execute = plain, piped
        del connection._commit
    return counts


def profile_api(collection, texts: list[str], secret: str) -> list[str]:
    """cProfile of the API search (the model's LRU kept warm, so the profile shows what is not the model)."""
    import cProfile
    import io
    import pstats

    from django.test import Client

    client = Client()
    url = f"/api/v1/rag/collections/{collection.pk}/search"
    for text in texts:
        client.post(url, {"query": text}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}")
    profiler = cProfile.Profile()
    profiler.enable()
    for text in texts:
        client.post(url, {"query": text}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}")
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(45)
    return out.getvalue().splitlines()


def run(args) -> dict:
    from bench.common import git_rev, machine, now_utc
    from bench.rag_common import setup

    setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from apps.accounts.models import Team
    from apps.accounts.services import api_token_create
    from apps.gateway import recording
    from apps.llm.offline import embeddings
    from apps.rag.evaluation import load_beir_dir
    from bench.rag_collections import ensure_collection

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    embeddings.prefer_threads(1)  # what a web process does (portal/warmup.py, ADR 0044)
    out: dict = {"date": now_utc(), "commit": git_rev(), "machine": machine(), "load_average_start": load_average()}
    folders = beir_dirs(None)
    erin = get_user_model().objects.get(username="erin")  # an owner of `search`: a real permission subquery
    secret = api_token_create(team=Team.objects.get(slug="search"), user=erin, name=f"bench-rag-query-{time.time():.0f}",
                              days=1).secret
    if not args.skip_scifact:
        scifact = ensure_collection(folders[0])
        texts = [q.text for q in load_beir_dir(folders[0], "test")][: args.queries]
        if args.profile_api:
            out["api_profile"] = profile_api(scifact, texts[:60], secret)
        log(f"SciFact: {len(texts)} queries ...")
        out["scifact"] = measure(scifact, texts, erin, secret)
    if not args.skip_real and not shards_ready():
        out["real_text"] = "not embedded: run `python -m bench.rag_query embed` first"
    elif not args.skip_real:
        real, build = ensure_real(args.max_chunks, args.reload)
        mixed = [q.text for folder in folders for q in load_beir_dir(folder, "test")]
        mixed = mixed[:: max(1, len(mixed) // args.queries)][: args.queries]
        log(f"{REAL_NAME}: {real.chunk_count} chunks, {len(mixed)} queries ...")
        out["real_text"] = {"target_chunks": args.target, "build": build,
                            **measure(real, mixed, erin, secret if args.api_on_real else None)}
    out["usage_records_drained"] = recording.drain_all()
    out["load_average_end"] = load_average()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("stage", nargs="?", default="run", choices=["embed", "load", "run"])
    parser.add_argument("--target", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--max-chunks", type=int, default=100_000)
    parser.add_argument("--reload", action="store_true", help="rebuild the real-text collection")
    parser.add_argument("--skip-real", action="store_true", help="SciFact only")
    parser.add_argument("--skip-scifact", action="store_true", help="the real-text collection only")
    parser.add_argument("--api-on-real", action="store_true")
    parser.add_argument("--profile-api", action="store_true")
    parser.add_argument("--no-index", action="store_true", help="load: leave the HNSW index for the last load")
    args = parser.parse_args()
    if args.stage == "embed":
        embed_corpus(args.target)
        return
    if args.stage == "load":  # load (or append) what is embedded so far, without measuring
        from bench.rag_common import setup

        setup()
        collection, build = ensure_real(args.max_chunks, args.reload, index=not args.no_index)
        print(json.dumps({"chunks": collection.chunk_count, "build": build}))
        return
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
