# Overlays: a hidden collection searched together with its base (copy-on-write, ADR 0120).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('rag', '0004_rag_tsvector'),
    ]

    operations = [
        migrations.AddField(
            model_name='collection',
            name='overlay_of',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE,
                                    related_name='overlays', to='rag.collection'),
        ),
        migrations.AddField(
            model_name='collection',
            name='overlay_owner',
            field=models.CharField(blank=True, max_length=120),
        ),
        migrations.AddConstraint(
            model_name='collection',
            constraint=models.UniqueConstraint(condition=models.Q(('overlay_owner', ''), _negated=True),
                                               fields=('overlay_owner',), name='rag_collection_overlay_owner'),
        ),
    ]
