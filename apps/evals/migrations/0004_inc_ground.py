# A product's own groundedness score on its feedback (ADR 0121).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('evals', '0003_gateway_item_source'),
    ]

    operations = [
        migrations.AddField(
            model_name='feedback',
            name='groundedness',
            field=models.FloatField(blank=True, null=True),
        ),
    ]
