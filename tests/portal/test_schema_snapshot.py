"""The schema snapshot `make run` loads into an empty database builds exactly what the migrations build."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

from portal import schema

pytestmark = pytest.mark.django_db(transaction=True)

_CAST = re.compile(r'::"?[a-z][a-z ]*"?(\[\])?')


def comparable(dump: str) -> list[str]:
    """PostgreSQL prints a re-parsed CHECK expression with other casts and parentheses
    (`IN (...)` comes back as `= ANY (ARRAY[...])` either way); compare without them."""
    return [re.sub(r"[()\s]", "", _CAST.sub("", line)) for line in dump.splitlines() if line.strip()]


def test_the_snapshot_was_made_from_the_migrations_on_disk():
    assert schema.snapshot_fingerprint() == schema.migrations_fingerprint(), (
        "portal/schema_snapshot.sql.gz is stale: run `make schema` and commit it"
    )


def test_an_empty_database_gets_the_snapshot_and_ends_with_the_schema_migrations_build():
    loaded, migrated = schema.scratch_database(), schema.scratch_database()
    try:
        env = dict(os.environ, DATABASE_URL=schema.database_url_for(loaded),
                   DJANGO_SETTINGS_MODULE="portal.settings.dev")
        setup = subprocess.run([sys.executable, "manage.py", "portal_setup", "--no-demo"], env=env,
                               cwd=settings.BASE_DIR, capture_output=True, text=True, check=True)
        assert "loaded the schema snapshot" in setup.stdout
        # Against a database built by every migration from nothing (not the test database: tests add
        # objects at run time, e.g. a collection's own vector index).
        schema.migrate_into(migrated)
        assert comparable(schema.dump(loaded, schema_only=True)) == comparable(schema.dump(migrated, schema_only=True))
        check = subprocess.run([sys.executable, "manage.py", "migrate", "--check"], env=env,
                               cwd=settings.BASE_DIR, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        schema.drop_database(loaded)
        schema.drop_database(migrated)


def test_a_database_with_tables_is_left_to_migrate():
    assert not schema.database_is_empty()
    assert schema.load_snapshot_if_fresh() is False


def test_a_stale_snapshot_is_not_loaded(tmp_path, monkeypatch):
    stale = tmp_path / "snapshot.sql.gz"
    stale.write_bytes(gzip.compress(b"-- migrations fingerprint: " + b"0" * 64 + b"\nCREATE TABLE must_not_exist (id int);\n"))
    monkeypatch.setattr(schema, "SNAPSHOT_PATH", stale)
    monkeypatch.setattr(schema, "database_is_empty", lambda: True)
    assert schema.load_snapshot_if_fresh() is False
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('public.must_not_exist')")
        assert cursor.fetchone()[0] is None
