"""Reviews' own inbox moves into the portal's one inbox (apps.notifications, ADR 0060).

Each reviews_notification row is copied to notifications_notification (kind prefixed `review.`, as the app
names its kinds now; subject → title, url → link; read time kept; marked e-mailed, since reviews sent the
mail when it wrote the row), then the reviews table is dropped. Reverse: the table comes back empty.
"""

from django.db import migrations

BATCH = 2000


def copy_to_shared_inbox(apps, schema_editor):
    Old = apps.get_model("reviews", "Notification")
    New = apps.get_model("notifications", "Notification")
    rows = (Old.objects.using(schema_editor.connection.alias).order_by("pk")
            .values("recipient_id", "recipient__email", "kind", "subject", "body", "url", "created_at", "read_at"))
    batch = []
    for row in rows.iterator(chunk_size=BATCH):
        batch.append(New(
            user_id=row["recipient_id"], kind=f"review.{row['kind']}"[:64], title=row["subject"][:200],
            body=row["body"], link=row["url"][:500], dedupe_key="", created_at=row["created_at"],
            read_at=row["read_at"], emailed_at=row["created_at"] if row["recipient__email"] else None,
        ))
        if len(batch) >= BATCH:
            New.objects.using(schema_editor.connection.alias).bulk_create(batch)
            batch = []
    if batch:
        New.objects.using(schema_editor.connection.alias).bulk_create(batch)


class Migration(migrations.Migration):

    dependencies = [
        ("notifications", "0001_initial"),
        ("reviews", "0002_seed_controls"),
    ]

    operations = [
        migrations.RunPython(copy_to_shared_inbox, migrations.RunPython.noop),
        migrations.DeleteModel(name="Notification"),
    ]
