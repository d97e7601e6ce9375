"""BM25 tokenisation of our own (ADR 0042): `rag_tsvector(text)` splits words at inner hyphens before
PostgreSQL's `english` configuration (Snowball stemmer, its stop words), so "IL-6", "covid-19" and "x-ray" give
the lexemes of "IL 6", "covid 19" and "x ray" (not a compound plus a signed number '-6'). Both the postings
and the query go through this one function. The postings of existing chunks are rebuilt from their stored
text in this migration (no re-embedding); document frequencies follow by the triggers of 0003."""

from django.db import migrations

FUNCTION = r"""
CREATE FUNCTION rag_tsvector(body text) RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT to_tsvector('pg_catalog.english'::regconfig, regexp_replace(body, '(\w)-(?=\w)', '\1 ', 'g')) $$;
"""

DROP_FUNCTION = "DROP FUNCTION IF EXISTS rag_tsvector(text);"

# The chunk's indexed text as apps.rag.indexing.search_text builds it (document title unless the heading path
# starts with it, heading path, text), then its postings, lengths and the collection's token total.
REBUILD = r"""
TRUNCATE rag_posting, rag_term_stat;
CREATE TEMP TABLE rag_rebuild ON COMMIT DROP AS
SELECT c.id AS chunk_id, c.collection_id, u.lexeme, coalesce(array_length(u.positions, 1), 1) AS tf
FROM rag_chunk c JOIN rag_document d ON d.id = c.document_id,
     unnest(rag_tsvector(concat_ws(E'\n',
         CASE WHEN d.title <> '' AND NOT starts_with(c.heading_path, d.title) THEN d.title END,
         nullif(c.heading_path, ''), c.text))) u;
UPDATE rag_chunk c SET bm25_length = coalesce(l.dl, 0)
FROM rag_chunk c2 LEFT JOIN (SELECT chunk_id, sum(tf)::int AS dl FROM rag_rebuild GROUP BY chunk_id) l
     ON l.chunk_id = c2.id
WHERE c.id = c2.id;
UPDATE rag_collection col SET token_total = coalesce((SELECT sum(bm25_length) FROM rag_chunk c
                                                       WHERE c.collection_id = col.id), 0);
INSERT INTO rag_posting (chunk_id, collection_id, term, tf, dl, impact)
SELECT r.chunk_id, r.collection_id, r.lexeme, r.tf, c.bm25_length,
       r.tf * (s.k1 + 1) / (r.tf + s.k1 * (1 - s.b + s.b * c.bm25_length / s.avgdl))
FROM rag_rebuild r JOIN rag_chunk c ON c.id = r.chunk_id
JOIN (SELECT id, coalesce((retrieval->>'k1')::float8, 2.0) AS k1, coalesce((retrieval->>'b')::float8, 0.75) AS b,
             GREATEST(token_total::float8 / GREATEST(chunk_count, 1), 1) AS avgdl
      FROM rag_collection) s ON s.id = r.collection_id;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('rag', '0003_bm25_impacts_and_term_stats'),
    ]

    operations = [
        migrations.RunSQL(FUNCTION, reverse_sql=DROP_FUNCTION),
        migrations.RunSQL(REBUILD, reverse_sql=migrations.RunSQL.noop),
    ]
