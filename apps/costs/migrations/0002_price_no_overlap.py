"""Two prices of one model may not be valid at the same moment. Enforced by the database."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION costs_price_refuse_overlap() RETURNS trigger AS $$
BEGIN
    -- Serialise writers of the same model so two concurrent inserts cannot both pass the check.
    PERFORM pg_advisory_xact_lock(hashtext('costs_price:' || NEW.model_name || ':' || NEW.provider));
    IF EXISTS (
        SELECT 1 FROM costs_price p
        WHERE p.model_name = NEW.model_name AND p.provider = NEW.provider AND p.id <> NEW.id
          AND tstzrange(p.valid_from, p.valid_to) && tstzrange(NEW.valid_from, NEW.valid_to)
    ) THEN
        RAISE EXCEPTION 'price for % overlaps an existing price period', NEW.model_name
            USING ERRCODE = 'exclusion_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER costs_price_no_overlap
    BEFORE INSERT OR UPDATE ON costs_price
    FOR EACH ROW EXECUTE FUNCTION costs_price_refuse_overlap();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS costs_price_no_overlap ON costs_price;
DROP FUNCTION IF EXISTS costs_price_refuse_overlap();
"""


class Migration(migrations.Migration):
    dependencies = [("costs", "0001_initial")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
