"""The use case becomes a rollup dimension (issue #14: the response cache's saving, and cost, per use case).

A nullable column (no rewrite of the table) and the unique key with it at the end. Rows built before stay right in
every sum; they only lack the use case (NULL) until their days are rebuilt from the raw ledger:
`python manage.py rollups_backfill_use_cases` (only the days whose events carry a use case; docs/costs.md). The
rebuild is not done here: on a large ledger it takes minutes, and a migration should not hold a deploy that long.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("costs", "0015_inc_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="usagerollup",
            name="use_case_id",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.RemoveConstraint(
            model_name="usagerollup",
            name="usage_rollup_key",
        ),
        migrations.AddConstraint(
            model_name="usagerollup",
            constraint=models.UniqueConstraint(
                fields=("granularity", "bucket_start", "team", "feature", "tenant", "model", "provider", "source",
                        "prompt_name", "prompt_version", "use_case_id"),
                name="usage_rollup_key", nulls_distinct=False),
        ),
    ]
