# The switch that acted on a call (ADR 0122): a column and a partial index for the incident page's counts.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('costs', '0014_inc_ground'),
    ]

    operations = [
        migrations.AddField(
            model_name='usageevent',
            name='switch_id',
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name='usageevent',
            index=models.Index(condition=models.Q(('switch_id__isnull', False)), fields=['switch_id'],
                               name='usage_switch_idx'),
        ),
    ]
