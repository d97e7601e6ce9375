"""BM25 in SQL equals a pure-Python reference; tokenisation; fusion (RRF, convex, z-score) on hand-made rankings;
MMR; vector leg with filters."""

import math
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.rag import retrieval
from apps.rag.config import RetrievalConfig
from apps.rag.models import Chunk
from apps.rag.retrieval import LegHit, fuse_convex, fuse_rrf
from tests.rag.conftest import add_text, run_jobs

CORPUS = {
    "cats.txt": "Cats are small carnivorous mammals. Cats sleep most of the day and hunt at night.",
    "dogs.txt": "Dogs are loyal companions. A dog needs daily walks; dogs love running in parks.",
    "pets.md": "# Pets\n\nChoosing between cats and dogs depends on your home, time and allergies.",
    "fish.txt": "Goldfish live in bowls or ponds and need clean water and a filter.",
    "mammals.txt": "Mammals feed their young with milk. Whales, bats, cats and humans are mammals, "
                   "and mammals are warm-blooded mammals indeed.",
    "empty-ish.txt": "The and of a to in.",
}


def _lexemes(text: str) -> Counter:
    with connection.cursor() as cursor:
        cursor.execute("SELECT lexeme, array_length(positions, 1) FROM unnest(rag_tsvector(%s))", [text])
        return Counter(dict(cursor.fetchall()))


def reference_bm25(docs: dict[int, Counter], query: Counter, k1: float, b: float) -> dict[int, float]:
    """Lucene's BM25, each query term weighted by its repetitions in the query, saturated with k3 = 8."""
    n = len(docs)
    avgdl = sum(sum(tf.values()) for tf in docs.values()) / n
    df = Counter(term for tf in docs.values() for term in tf)
    scores = {}
    for cid, tf in docs.items():
        dl = sum(tf.values())
        score = 0.0
        for term, qtf in query.items():
            if term in tf:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                weight = 9 * qtf / (8 + qtf)
                score += weight * idf * tf[term] * (k1 + 1) / (tf[term] + k1 * (1 - b + b * dl / avgdl))
        if score > 0:
            scores[cid] = score
    return scores


@pytest.fixture
def corpus(collection):
    for name, text in CORPUS.items():
        add_text(collection, name, text, index=False)
    run_jobs(collection)
    return collection


@pytest.mark.django_db
@pytest.mark.parametrize("k1, b", [(1.2, 0.75), (0.9, 0.4), (2.0, 1.0), (0.5, 0.0)])
@pytest.mark.parametrize("query", ["cats and dogs", "mammals", "clean water for goldfish", "running dogs parks",
                                   "whales bats humans warm blooded", "mammals, mammals: which mammals hunt cats?"])
def test_bm25_in_sql_equals_the_reference_computation(corpus, query, k1, b):
    from apps.rag.chunking import ChunkSpec
    from apps.rag.indexing import search_text

    docs = {}
    for chunk in Chunk.objects.filter(collection=corpus).select_related("document"):
        spec = ChunkSpec(text=chunk.text, char_start=0, char_end=0, heading_path=chunk.heading_path)
        docs[chunk.pk] = _lexemes(search_text(chunk.document.title, spec))
    assert corpus.chunk_count == len(docs)
    assert corpus.token_total == sum(sum(tf.values()) for tf in docs.values())
    expected = reference_bm25(docs, _lexemes(query), k1, b)
    hits = retrieval.bm25_search(collection=corpus, query=query, limit=100, actor=retrieval.SYSTEM, k1=k1, b=b)
    assert {h.chunk_id for h in hits} == set(expected)
    for hit in hits:
        assert hit.score == pytest.approx(expected[hit.chunk_id], abs=1e-9, rel=0)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))


@pytest.mark.django_db
def test_pruned_bm25_returns_exact_scores_for_what_it_returns(corpus):
    exact = retrieval.bm25_search(collection=corpus, query="cats mammals dogs", limit=10, actor=retrieval.SYSTEM,
                                  k1=1.2, b=0.75, term_postings=0)
    pruned = retrieval.bm25_search(collection=corpus, query="cats mammals dogs", limit=10, actor=retrieval.SYSTEM,
                                   k1=1.2, b=0.75, term_postings=1)
    by_id = {h.chunk_id: h for h in exact}
    assert pruned and pruned[0].chunk_id == exact[0].chunk_id
    for hit in pruned:  # each returned chunk carries its full score and every matched term
        assert hit.score == pytest.approx(by_id[hit.chunk_id].score, abs=1e-9)
        assert hit.terms == by_id[hit.chunk_id].terms


@pytest.mark.django_db
def test_bm25_reports_the_matched_terms_and_highlights_them(corpus, owner):
    config = RetrievalConfig(mode="bm25", k=3)
    result = retrieval.retrieve(collection=corpus, query="Which mammals sleep?", actor=owner, config=config)
    top = result.hits[0]
    assert top.source_name in ("cats.txt", "mammals.txt")
    assert set(top.matched_terms) <= {"mammal", "sleep"}
    assert "<mark>" in top.highlighted
    assert result.query_terms == ["mammal", "sleep"]


@pytest.mark.django_db
def test_stop_words_only_query_returns_nothing_instead_of_failing(corpus, owner):
    result = retrieval.retrieve(collection=corpus, query="the of and", actor=owner, config=RetrievalConfig(mode="bm25"))
    assert result.hits == []


@pytest.mark.django_db
@pytest.mark.parametrize("text, lexemes", [
    ("IL-6 and TNF-alpha", {"il", "6", "tnf", "alpha"}),  # gene names split at the hyphen, no compound
    ("covid-19 or COVID 19", {"covid", "19"}),  # a hyphenated number is the same number, not '-19'
    ("x-ray re-entry", {"x", "ray", "re", "entri"}),  # Snowball stems the parts
    ("BRCA1 p53 mutations", {"brca1", "p53", "mutat"}),  # letters and digits stay one lexeme
    ("1.5 mg/kg at -20 degrees", {"1.5", "mg/kg", "-20", "degre"}),  # numbers kept whole, a minus sign too
    ("What is the role of the cells?", {"role", "cell"}),  # english stop words
])
def test_rag_tsvector_splits_inner_hyphens_and_stems_with_snowball(text, lexemes):
    assert set(_lexemes(text)) == lexemes
    assert set(retrieval.query_terms(text)) == lexemes


@pytest.mark.django_db
def test_a_term_repeated_in_the_query_weighs_more_but_saturates(corpus):
    def top(query):
        return retrieval.bm25_search(collection=corpus, query=query, limit=10, actor=retrieval.SYSTEM, k1=1.2,
                                     b=0.75)[0]

    once, twice, many = top("cats water"), top("cats cats water"), top("cats " * 50 + "water")
    assert once.score < twice.score < many.score < once.score * 9  # (k3 + 1) bounds the weight of a term


def test_rrf_sums_weighted_reciprocal_ranks():
    bm25 = [LegHit(1, 9.0, 1), LegHit(2, 5.0, 2), LegHit(3, 1.0, 3)]
    vector = [LegHit(3, 0.9, 1), LegHit(1, 0.8, 2)]
    fused = dict(fuse_rrf({"bm25": bm25, "vector": vector}, k=60))
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2] == pytest.approx(1 / 62)
    ranked = fuse_rrf({"bm25": bm25, "vector": vector}, k=60, weights={"bm25": 0.0, "vector": 1.0})
    assert [cid for cid, _ in ranked] == [3, 1]


def test_rrf_ties_are_broken_by_chunk_id_so_results_are_stable():
    ranked = fuse_rrf({"bm25": [LegHit(7, 1, 1)], "vector": [LegHit(4, 1, 1)]}, k=60)
    assert [cid for cid, _ in ranked] == [4, 7]


def test_convex_fusion_normalises_each_leg():
    bm25 = [LegHit(1, 20.0, 1), LegHit(2, 10.0, 2), LegHit(3, 0.0, 3)]
    vector = [LegHit(2, 0.9, 1), LegHit(3, 0.5, 2), LegHit(4, 0.1, 3)]
    fused = dict(fuse_convex(bm25, vector, alpha=0.5))
    assert fused[1] == pytest.approx(0.5 * 1.0)
    assert fused[2] == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)
    assert fused[4] == pytest.approx(0.0)
    assert dict(fuse_convex(bm25, vector, alpha=0.0))[1] == pytest.approx(1.0)


def test_zscore_fusion_standardises_each_leg_and_floors_the_absent():
    bm25 = [LegHit(1, 30.0, 1), LegHit(2, 10.0, 2), LegHit(3, 5.0, 3)]
    vector = [LegHit(2, 0.9, 1), LegHit(3, 0.6, 2), LegHit(4, 0.3, 3)]

    def z(values, x):
        mean = sum(values) / len(values)
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        return (x - mean) / sd

    b, v = [30.0, 10.0, 5.0], [0.9, 0.6, 0.3]
    fused = dict(retrieval.fuse_zscore(bm25, vector, alpha=0.25))
    assert fused[1] == pytest.approx(0.75 * z(b, 30.0) + 0.25 * z(v, 0.3))  # absent from vector: its lowest
    assert fused[2] == pytest.approx(0.75 * z(b, 10.0) + 0.25 * z(v, 0.9))
    assert fused[4] == pytest.approx(0.75 * z(b, 5.0) + 0.25 * z(v, 0.3))  # absent from BM25: its lowest
    assert [cid for cid, _ in retrieval.fuse_zscore(bm25, vector, alpha=0.0)][0] == 1
    assert [cid for cid, _ in retrieval.fuse_zscore(bm25, vector, alpha=1.0)][0] == 2
    # scale-free: multiplying a leg's scores changes nothing
    scaled = [LegHit(h.chunk_id, h.score * 7, h.rank) for h in bm25]
    plain, rescaled = retrieval.fuse_zscore(bm25, vector, alpha=0.4), retrieval.fuse_zscore(scaled, vector, alpha=0.4)
    assert [cid for cid, _ in rescaled] == [cid for cid, _ in plain]
    assert [score for _, score in rescaled] == pytest.approx([score for _, score in plain])


def test_zscore_fusion_of_one_leg_or_equal_scores_does_not_divide_by_zero():
    assert retrieval.fuse_zscore([], [LegHit(5, 0.7, 1), LegHit(6, 0.7, 2)], alpha=0.5) == [(5, 0.0), (6, 0.0)]
    assert retrieval.fuse_zscore([], [], alpha=0.5) == []


def test_fuse_follows_the_configured_method():
    bm25 = [LegHit(1, 30.0, 1), LegHit(2, 10.0, 2)]
    vector = [LegHit(2, 0.9, 1), LegHit(3, 0.6, 2)]
    config = RetrievalConfig()
    assert retrieval.fuse(config.replace(fusion="zscore", alpha=0.3), bm25, vector) == \
        retrieval.fuse_zscore(bm25, vector, alpha=0.3)
    assert retrieval.fuse(config.replace(fusion="convex", alpha=0.3), bm25, vector) == \
        fuse_convex(bm25, vector, alpha=0.3)
    assert retrieval.fuse(config.replace(fusion="rrf", rrf_k=5), bm25, vector) == \
        fuse_rrf({"bm25": bm25, "vector": vector}, k=5)


def test_mmr_prefers_a_diverse_second_result():
    import numpy as np

    vectors = {1: np.array([1.0, 0.0]), 2: np.array([0.999, 0.0447]), 3: np.array([0.0, 1.0])}
    ranked = [(1, 1.0), (2, 0.95), (3, 0.9)]
    assert [cid for cid, _ in retrieval.mmr(ranked, vectors, k=2, lam=0.5)] == [1, 3]
    assert [cid for cid, _ in retrieval.mmr(ranked, vectors, k=2, lam=1.0)] == [1, 2]


@pytest.mark.django_db
@pytest.mark.real_minilm
def test_hybrid_hits_carry_both_legs_and_the_timings(corpus, owner):
    result = retrieval.retrieve(collection=corpus, query="loyal dogs that need walks", actor=owner,
                                config=RetrievalConfig(mode="hybrid", k=3, fusion="rrf"))
    top = result.hits[0]
    assert top.source_name == "dogs.txt"
    assert top.bm25_rank == 1 and top.vector_rank == 1 and top.fused_rank == 1
    assert 0 < top.vector_similarity <= 1
    assert {"embed_ms", "search_ms", "fusion_ms", "fetch_ms", "total_ms"} <= set(result.timings)


@pytest.mark.django_db
@pytest.mark.parametrize("filters", [None, {"group": "rare"}])
def test_both_legs_in_one_round_trip_give_what_each_leg_gives_alone(collection, owner, filters):
    for i in range(12):
        add_text(collection, f"doc{i}.txt", f"Document number {i} about topic {i % 3}: dogs, cats and walks.",
                 metadata={"group": "rare" if i in (5, 7) else "common"}, index=False)
    run_jobs(collection)
    config = RetrievalConfig(mode="hybrid", k=5, filters=filters)
    vector = retrieval.embed_query(collection, ["dogs that need walks"])[0]
    bm25_alone = retrieval.bm25_search(collection=collection, query="dogs that need walks", limit=20, actor=owner,
                                       k1=config.k1, b=config.b, filters=filters)
    vector_alone = retrieval.vector_search(collection=collection, vector=vector, limit=20, actor=owner,
                                           ef_search=config.ef_search, filters=filters)
    with CaptureQueriesContext(connection) as queries:
        bm25, vector_hits = retrieval.search_legs(collection=collection, query="dogs that need walks", vector=vector,
                                                  limit=20, actor=owner, config=config, notes=[])
    assert [(h.chunk_id, h.rank, h.terms) for h in bm25] == [(h.chunk_id, h.rank, h.terms) for h in bm25_alone]
    assert [h.score for h in bm25] == pytest.approx([h.score for h in bm25_alone])
    assert [(h.chunk_id, h.rank) for h in vector_hits] == [(h.chunk_id, h.rank) for h in vector_alone]
    assert len(bm25) == (2 if filters else 12) and len(vector_hits) == len(bm25)
    # one pipeline (the BM25 statement, hnsw.ef_search, the vector statement); a filter is weighed first
    assert [q["sql"] is not None and "count(*)" in q["sql"] for q in queries.captured_queries][:1] == [bool(filters)]
    assert len(queries) == (4 if filters else 3)


@pytest.mark.django_db
@pytest.mark.parametrize("prepared", [True, False])
def test_a_hybrid_query_starts_the_model_runs_the_keyword_leg_meanwhile_and_ranks_as_in_one_round_trip(
        collection, owner, monkeypatch, settings, prepared):
    settings.RAG_PREPARED_STATEMENTS = prepared
    for i in range(12):
        add_text(collection, f"doc{i}.txt", f"Document number {i} about topic {i % 3}: dogs, cats and walks.",
                 index=False)
    run_jobs(collection)
    config = RetrievalConfig(mode="hybrid", k=5)
    vector = retrieval.embed_query(collection, ["dogs that need walks"])[0]
    together = retrieval.retrieve(collection=collection, query="dogs that need walks", actor=owner, config=config,
                                  query_vector=vector, explain=False)
    order = []
    monkeypatch.setattr(retrieval.calls, "embed_ahead", lambda **kw: order.append(("ahead", kw["texts"])))

    def seen(execute, sql, params, many, context):
        order.append(("sql", sql))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(seen):
        split = retrieval.retrieve(collection=collection, query="dogs that need walks", actor=owner, config=config,
                                   explain=False)

    sqls = [sql for _, sql in order[1:]]
    keywords = next(i for i, sql in enumerate(sqls) if "rag_posting" in sql)
    vectors = next(i for i, sql in enumerate(sqls) if "<=>" in sql)
    assert order[0] == ("ahead", ["dogs that need walks"])  # the model first, then the keyword leg
    assert keywords < vectors and "<=>" not in sqls[keywords] and "rag_posting" not in sqls[vectors]
    assert [(h.chunk_id, h.fused_score, h.bm25_score, h.vector_similarity) for h in split.hits] == \
        [(h.chunk_id, h.fused_score, h.bm25_score, h.vector_similarity) for h in together.hits]
    assert {"bm25_ms", "embed_ms", "vector_ms", "search_ms"} <= set(split.timings)


@pytest.mark.django_db
def test_vector_filter_on_a_few_chunks_does_not_starve(collection, owner):
    for i in range(30):
        add_text(collection, f"doc{i}.txt", f"Document number {i} about topic {i % 3}.",
                 metadata={"group": "rare" if i in (5, 17) else "common"}, index=False)
    run_jobs(collection)
    vector = retrieval.embed_query(collection, ["document about topic"])[0]
    notes = []
    hits = retrieval.vector_search(collection=collection, vector=vector, limit=5, actor=owner, ef_search=2,
                                   filters={"group": "rare"}, notes=notes)
    names = set(Chunk.objects.filter(pk__in=[h.chunk_id for h in hits]).values_list("document__source_name",
                                                                                    flat=True))
    assert names == {"doc5.txt", "doc17.txt"}
    assert any("exact" in note for note in notes)
    bm25 = retrieval.bm25_search(collection=collection, query="document", limit=50, actor=owner, k1=1.2, b=0.75,
                                 filters={"group": "rare"})
    assert len(bm25) == 2


@pytest.mark.django_db
def test_hnsw_and_exact_search_agree_on_a_small_collection(corpus):
    vector = retrieval.embed_query(corpus, ["pets at home"])[0]
    approx = retrieval.vector_search(collection=corpus, vector=vector, limit=5, actor=retrieval.SYSTEM)
    exact = retrieval.vector_search(collection=corpus, vector=vector, limit=5, actor=retrieval.SYSTEM, exact=True)
    # Same chunks with the same scores; chunks whose scores tie may come back in either order.
    assert {h.chunk_id for h in approx} == {h.chunk_id for h in exact}
    exact_scores = {h.chunk_id: h.score for h in exact}
    for hit in approx:
        assert hit.score == pytest.approx(exact_scores[hit.chunk_id], abs=1e-6)
    assert [h.score for h in approx] == pytest.approx([h.score for h in exact], abs=1e-4)


@pytest.mark.django_db
@pytest.mark.parametrize("exact", [False, True])
def test_the_vector_leg_uses_the_collections_hnsw_index_unless_exact(corpus, owner, exact):
    sql, params = retrieval.vector_sql(corpus.pk, 384, retrieval.vector_literal([0.01] * 384), 5, owner, None, exact)
    with connection.cursor() as cursor:
        # A tiny table: steer the planner away from the cheap alternatives to see what it can use.
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            cursor.execute(f"SET LOCAL {setting} = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert (corpus.hnsw_index_name in plan) is not exact
