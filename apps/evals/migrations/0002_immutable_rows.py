"""Dataset revisions, evaluator definitions and gate history refuse UPDATE in the database itself; a dataset
item accepts exactly one UPDATE: setting `removed_in` (the revision that dropped it), nothing else.

DELETE stays possible (a dataset's deletion, a test database truncation).
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION evals_refuse_update() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is immutable: UPDATE refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER evals_revision_immutable BEFORE UPDATE ON evals_datasetrevision
    FOR EACH ROW EXECUTE FUNCTION evals_refuse_update();
CREATE TRIGGER evals_evaluator_immutable BEFORE UPDATE ON evals_evaluatordefinition
    FOR EACH ROW EXECUTE FUNCTION evals_refuse_update();
CREATE TRIGGER evals_gate_change_append_only BEFORE UPDATE ON evals_evalgatechange
    FOR EACH ROW EXECUTE FUNCTION evals_refuse_update();

CREATE OR REPLACE FUNCTION evals_item_only_removal() RETURNS trigger AS $$
BEGIN
    IF OLD.removed_in IS NULL AND NEW.removed_in IS NOT NULL
       AND (NEW.id, NEW.dataset_id, NEW.key, NEW.added_in, NEW.position, NEW.inputs, NEW.expected, NEW.contexts,
            NEW.tags, NEW.source, NEW.source_ref, NEW.metadata, NEW.created_at)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.dataset_id, OLD.key, OLD.added_in, OLD.position, OLD.inputs, OLD.expected, OLD.contexts,
            OLD.tags, OLD.source, OLD.source_ref, OLD.metadata, OLD.created_at) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'dataset items are immutable: only removing one from a later revision is allowed'
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER evals_item_immutable BEFORE UPDATE ON evals_datasetitem
    FOR EACH ROW EXECUTE FUNCTION evals_item_only_removal();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS evals_revision_immutable ON evals_datasetrevision;
DROP TRIGGER IF EXISTS evals_evaluator_immutable ON evals_evaluatordefinition;
DROP TRIGGER IF EXISTS evals_gate_change_append_only ON evals_evalgatechange;
DROP TRIGGER IF EXISTS evals_item_immutable ON evals_datasetitem;
DROP FUNCTION IF EXISTS evals_refuse_update();
DROP FUNCTION IF EXISTS evals_item_only_removal();
"""


class Migration(migrations.Migration):
    dependencies = [("evals", "0001_initial")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
