"""TRUNCATE skips row triggers, so `manage.py flush` or a stray TRUNCATE would empty the log: refuse it.

Django's test runner empties tables with TRUNCATE between transactional tests, so databases named by its
test convention (`test_…`) are exempt unless the session sets portal.audit_truncate_guard = 'on'. See docs/adr/0004-audit-hash-chain.md.
"""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION audit_event_refuse_truncate() RETURNS trigger AS $$
BEGIN
    -- Django's test databases may be emptied, unless a test asks for the guard (to test it).
    IF current_database() LIKE 'test\_%'
       AND coalesce(current_setting('portal.audit_truncate_guard', true), '') <> 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit_auditevent is append-only: TRUNCATE refused'
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_event_no_truncate
    BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_refuse_truncate();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_event_refuse_truncate();
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_hash_version_and_verification")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
