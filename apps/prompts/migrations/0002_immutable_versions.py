"""Prompt versions and label history refuse UPDATE in the database itself, whoever connects.

DELETE stays possible so deleting a whole prompt (or a test database truncation) still works.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION prompts_refuse_update() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is immutable: UPDATE refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER prompts_version_immutable
    BEFORE UPDATE ON prompts_promptversion
    FOR EACH ROW EXECUTE FUNCTION prompts_refuse_update();

CREATE TRIGGER prompts_label_event_append_only
    BEFORE UPDATE ON prompts_labelevent
    FOR EACH ROW EXECUTE FUNCTION prompts_refuse_update();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS prompts_version_immutable ON prompts_promptversion;
DROP TRIGGER IF EXISTS prompts_label_event_append_only ON prompts_labelevent;
DROP FUNCTION IF EXISTS prompts_refuse_update();
"""


class Migration(migrations.Migration):
    dependencies = [("prompts", "0001_initial")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
