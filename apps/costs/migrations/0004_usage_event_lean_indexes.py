"""The ledger keeps only the indexes ingestion can afford: pk, request_id (idempotency), BRIN on time, team+time.

Django adds a varchar_pattern_ops copy of every unique CharField index for LIKE queries; nobody searches
request ids by prefix, and on tens of millions of rows it costs every insert. Drop it.
"""

from django.db import migrations

FORWARD = """
DO $$
DECLARE name text;
BEGIN
    FOR name IN SELECT indexname FROM pg_indexes
                WHERE tablename = 'costs_usageevent' AND indexname LIKE '%request_id%like'
    LOOP
        EXECUTE format('DROP INDEX IF EXISTS %I', name);
    END LOOP;
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("costs", "0003_rollups_budgets_alerts")]
    operations = [migrations.RunSQL(FORWARD, migrations.RunSQL.noop)]
