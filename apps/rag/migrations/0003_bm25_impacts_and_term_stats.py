"""BM25 at scale: postings ordered by a precomputed impact (top-k pruning) and document frequencies kept by
statement-level triggers on rag_posting (transition tables), in the transaction that writes the postings."""

from django.db import migrations, models

BACKFILL_IMPACT = """
UPDATE rag_posting p SET impact = p.tf * (s.k1 + 1) / (p.tf + s.k1 * (1 - s.b + s.b * p.dl / s.avgdl))
FROM (
    SELECT id, coalesce((retrieval->>'k1')::float8, 1.2) AS k1, coalesce((retrieval->>'b')::float8, 0.4) AS b,
           GREATEST(token_total::float8 / GREATEST(chunk_count, 1), 1) AS avgdl
    FROM rag_collection
) s
WHERE s.id = p.collection_id
"""

TRIGGERS = """
INSERT INTO rag_term_stat (collection_id, term, df)
SELECT collection_id, term, count(*) FROM rag_posting GROUP BY collection_id, term;

CREATE FUNCTION rag_term_stat_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rag_term_stat AS s (collection_id, term, df)
    SELECT collection_id, term, count(*) FROM new_postings GROUP BY collection_id, term ORDER BY collection_id, term
    ON CONFLICT (collection_id, term) DO UPDATE SET df = s.df + EXCLUDED.df;
    RETURN NULL;
END $$;

CREATE FUNCTION rag_term_stat_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- lock in one order (collection, term) so concurrent writers cannot deadlock on the counters
    PERFORM 1 FROM rag_term_stat s
    WHERE (s.collection_id, s.term) IN (SELECT collection_id, term FROM old_postings)
    ORDER BY s.collection_id, s.term FOR UPDATE;
    UPDATE rag_term_stat s SET df = s.df - d.n
    FROM (SELECT collection_id, term, count(*) AS n FROM old_postings GROUP BY collection_id, term) d
    WHERE s.collection_id = d.collection_id AND s.term = d.term;
    RETURN NULL;
END $$;

CREATE TRIGGER rag_posting_added AFTER INSERT ON rag_posting REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION rag_term_stat_add();
CREATE TRIGGER rag_posting_removed AFTER DELETE ON rag_posting REFERENCING OLD TABLE AS old_postings
    FOR EACH STATEMENT EXECUTE FUNCTION rag_term_stat_remove();
"""

DROP_TRIGGERS = """
DROP TRIGGER IF EXISTS rag_posting_added ON rag_posting;
DROP TRIGGER IF EXISTS rag_posting_removed ON rag_posting;
DROP FUNCTION IF EXISTS rag_term_stat_add();
DROP FUNCTION IF EXISTS rag_term_stat_remove();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('rag', '0002_posting_cascade'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='posting',
            name='rag_posting_term_idx',
        ),
        migrations.AddField(
            model_name='posting',
            name='impact',
            field=models.FloatField(default=0.0),
        ),
        migrations.RunSQL(BACKFILL_IMPACT, reverse_sql=migrations.RunSQL.noop),
        migrations.AddIndex(
            model_name='posting',
            index=models.Index(models.F('collection_id'), models.F('term'), models.OrderBy(models.F('impact'), descending=True), include=('chunk', 'tf', 'dl'), name='rag_posting_impact_idx'),
        ),
        migrations.CreateModel(
            name='TermStat',
            fields=[
                ('pk', models.CompositePrimaryKey('collection_id', 'term', blank=True, editable=False, primary_key=True, serialize=False)),
                ('collection_id', models.BigIntegerField()),
                ('term', models.TextField()),
                ('df', models.IntegerField(default=0)),
            ],
            options={'db_table': 'rag_term_stat'},
        ),
        migrations.RunSQL(TRIGGERS, reverse_sql=DROP_TRIGGERS),
    ]
