# Indirect injection against a RAG collection (ADR 0120): the campaign's collection, what the run found, and per
# attack whether the planted document was retrieved and at which rank.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('rag', '0005_rt_rag_overlay'),
        ('redteam', '0002_rt_gateway_keys'),
    ]

    operations = [
        migrations.AddField(
            model_name='campaign',
            name='rag_collection',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name='+', to='rag.collection'),
        ),
        migrations.AddField(
            model_name='campaign',
            name='rag_snapshot',
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name='attack',
            name='planted_retrieved',
            field=models.BooleanField(null=True),
        ),
        migrations.AddField(
            model_name='attack',
            name='planted_rank',
            field=models.PositiveSmallIntegerField(blank=True, null=True),
        ),
    ]
