"""Postings go with their chunk in the database (ON DELETE CASCADE), so deleting a document's chunks is one
statement and Django never loads postings to delete them (the model's FK is DO_NOTHING, db_constraint off)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("rag", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql="ALTER TABLE rag_posting ADD CONSTRAINT rag_posting_chunk_fk FOREIGN KEY (chunk_id) "
                "REFERENCES rag_chunk (id) ON DELETE CASCADE DEFERRABLE INITIALLY IMMEDIATE",
            reverse_sql="ALTER TABLE rag_posting DROP CONSTRAINT IF EXISTS rag_posting_chunk_fk",
        ),
    ]
