"""Rollup rows are updated in place at every ingest: leave room on each page so updates stay HOT (no index
churn on the ten-column unique key)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("costs", "0004_usage_event_lean_indexes")]
    operations = [
        migrations.RunSQL(
            "ALTER TABLE costs_usagerollup SET (fillfactor = 70); "
            "ALTER TABLE costs_usagetokenhistogram SET (fillfactor = 70); "
            "ALTER TABLE costs_budgetperiod SET (fillfactor = 50);",
            "ALTER TABLE costs_usagerollup RESET (fillfactor); ALTER TABLE costs_usagetokenhistogram RESET (fillfactor); "
            "ALTER TABLE costs_budgetperiod RESET (fillfactor);",
        ),
    ]
