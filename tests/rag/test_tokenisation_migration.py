"""Migration 0004: postings written with the old tokenisation (`english` alone) are rebuilt with `rag_tsvector`
from the stored chunk text, and the BM25 statistics (chunk lengths, token total, df) follow."""

import importlib

import pytest
from django.db import connection

from apps.rag.models import Chunk, Posting
from tests.rag.conftest import add_text, run_jobs
from tests.rag.test_indexing import _stats_match

migration = importlib.import_module("apps.rag.migrations.0004_rag_tsvector")


def _postings(collection) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    for chunk_id, term, tf in Posting.objects.filter(collection_id=collection.pk).values_list("chunk_id", "term", "tf"):
        out.setdefault(chunk_id, {})[term] = tf
    return out


@pytest.mark.django_db
def test_the_rebuild_turns_old_english_postings_into_rag_tsvector_ones(collection):
    add_text(collection, "genes.txt", "IL-6 and TNF-alpha rise in covid-19; x-ray findings of re-entry.", index=False)
    add_text(collection, "plain.md", "# Cytokines\n\nInterleukin 6 levels in COVID 19 patients.", index=False)
    run_jobs(collection)
    fresh = _postings(collection)
    assert {"il", "6", "covid", "19"} <= set(fresh[Chunk.objects.get(document__source_name="genes.txt").pk])

    with connection.cursor() as cursor:  # what migration 0003 left: postings from `english` alone
        cursor.execute("DELETE FROM rag_posting WHERE collection_id = %s", [collection.pk])
        cursor.execute("""
            INSERT INTO rag_posting (chunk_id, collection_id, term, tf, dl, impact)
            SELECT c.id, c.collection_id, u.lexeme, array_length(u.positions, 1), 1, 0
            FROM rag_chunk c, unnest(to_tsvector('english', c.text)) u WHERE c.collection_id = %s""",
                       [collection.pk])
    assert "-19" in {t for terms in _postings(collection).values() for t in terms}

    with connection.cursor() as cursor:
        cursor.execute(migration.REBUILD)
    assert _postings(collection) == fresh
    _stats_match(collection)
    assert Posting.objects.filter(collection_id=collection.pk, impact__lte=0).count() == 0
