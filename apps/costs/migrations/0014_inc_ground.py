# A RAG answer's groundedness on its usage event, and the partial indexes the incidents' fold and the scorecards
# read (ADR 0121).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('costs', '0013_exp_more_experiment_unit'),
    ]

    operations = [
        migrations.AddField(
            model_name='usageevent',
            name='groundedness',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name='usageevent',
            index=models.Index(condition=models.Q(('groundedness__isnull', False)), fields=['id'], name='usage_groundedness_idx'),
        ),
        migrations.AddIndex(
            model_name='usageevent',
            index=models.Index(condition=models.Q(('groundedness__isnull', False)), fields=['collection_id', 'occurred_at'], name='usage_grounded_collection_idx'),
        ),
    ]
