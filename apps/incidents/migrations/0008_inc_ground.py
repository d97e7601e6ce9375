# Live groundedness and its drop rule (ADR 0121).

from django.db import migrations, models


def create_cursor(apps, schema_editor):
    """The ledger fold's one cursor row (apps/incidents/live_quality.py): starts before every usage event."""
    apps.get_model("incidents", "LedgerFoldCursor").objects.get_or_create(pk=1)


class Migration(migrations.Migration):

    dependencies = [
        ('incidents', '0007_kpi_missed'),
    ]

    operations = [
        migrations.CreateModel(
            name='GroundednessCount',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('use_case_id', models.BigIntegerField()),
                ('span_minutes', models.PositiveSmallIntegerField()),
                ('start', models.DateTimeField()),
                ('answers', models.IntegerField(default=0)),
                ('total', models.FloatField(default=0)),
                ('total_sq', models.FloatField(default=0)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('span_minutes', 'start', 'use_case_id'), name='incidents_groundedness_count_key')],
            },
        ),
        migrations.CreateModel(
            name='LedgerFoldCursor',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('last_id', models.BigIntegerField(default=0)),
                ('folded_at', models.DateTimeField(blank=True, null=True)),
            ],
        ),
        migrations.AlterField(
            model_name='detectionrule',
            name='min_requests',
            field=models.PositiveIntegerField(default=20, help_text='Gateway errors: fewer requests never fire; task success drop: fewer feedbacks in the window (or its baseline) never fire; groundedness drop: fewer scored answers.'),
        ),
        migrations.AlterField(
            model_name='detectionrule',
            name='signal',
            field=models.CharField(choices=[('gateway_errors', 'Gateway error rate (per-minute SLI counts, per use case)'), ('breaker_open', "A deployment's circuit breaker open (per team calling its alias)"), ('budget_cap', 'Budget hard cap hit (429 insufficient_quota refusals, per feature)'), ('cost_anomaly', 'Cost anomaly (spend over its 7-day norm)'), ('guardrail_spike', 'Guardrail blocks spike (per key)'), ('output_pii', 'PII found in outputs (per key)'), ('eval_gate_failures', 'Eval gate failures (per prompt)'), ('task_success_drop', 'Task success drop on live feedback (per use case, against its baseline)'), ('groundedness_drop', 'Groundedness drop on live answers (per use case, against its baseline)'), ('kpi_missed', 'Scorecard KPIs missing their targets (per use case)')], max_length=24),
        ),
        migrations.AlterField(
            model_name='detectionrule',
            name='threshold',
            field=models.FloatField(help_text="Error rate 0–1, spend ratio, or a count in the window (blocks, refusals, outputs with PII, calls to a broken deployment, failed runs); task success or groundedness drop: the least drop that counts, 0–1 (0.1 = 10 points); KPIs missed: how many of a use case's KPIs must miss (1 = any)."),
        ),
        migrations.RunPython(create_cursor, migrations.RunPython.noop),
    ]
