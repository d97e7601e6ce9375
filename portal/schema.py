"""The schema snapshot: what every migration produces on an empty database, as one SQL file.

Migrations stay the source of truth. On a database with no tables at all, loading the snapshot (one
transaction, well under a second) replaces replaying every migration (Django re-renders its model state
per operation: ~8 s here), as Rails' `db:schema:load` does. The snapshot names a fingerprint of the
migration files it came from; if any migration was added or edited since, it is not used and `migrate`
runs as usual. `make schema` rewrites it (gzipped); a test fails when it is stale or differs from what the
migrations build. See docs/adr/0007-schema-snapshot.md.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader

# Gzipped: a generated file nobody edits or reviews line by line (the migrations are what gets reviewed).
SNAPSHOT_PATH = Path(settings.BASE_DIR) / "portal" / "schema_snapshot.sql.gz"
_FINGERPRINT_LINE = re.compile(r"^-- migrations fingerprint: ([0-9a-f]{64})$", re.MULTILINE)


def migrations_fingerprint() -> str:
    """A hash of every migration file on disk (name and content): any change makes a new fingerprint."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    digest = hashlib.sha256()
    for key in sorted(loader.disk_migrations):
        module = __import__(loader.disk_migrations[key].__module__, fromlist=["__file__"])
        digest.update(f"{key[0]}.{key[1]}\n".encode())
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def snapshot_fingerprint(path: Path | None = None) -> str | None:
    path = path or SNAPSHOT_PATH
    if not path.exists():
        return None
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        head = handle.read(400)
    found = _FINGERPRINT_LINE.search(head)
    return found.group(1) if found else None


def database_is_empty() -> bool:
    """No table in the public schema: a database nobody has migrated yet."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        return cursor.fetchone()[0] == 0


def load_snapshot_if_fresh() -> bool:
    """Load the snapshot into an empty database when it matches the migrations. True if it was loaded."""
    if not database_is_empty() or snapshot_fingerprint() != migrations_fingerprint():
        return False
    with gzip.open(SNAPSHOT_PATH, "rt", encoding="utf-8") as handle:
        sql = handle.read()
    with transaction.atomic(), connection.cursor() as cursor:
        # No parameters: psycopg sends the whole script in one round trip.
        cursor.execute(sql)
        # pg_dump's preamble empties search_path for the session; put the usual one back.
        cursor.execute("SET search_path TO \"$user\", public")
    return True


# --- writing (make schema) and comparing (the test) -------------------------------------------------

def pg_binary(name: str) -> str:
    """pgserver's client programs match the embedded server; fall back to PATH for an external one."""
    try:
        import pgserver  # why: optional (`local` extra) and heavy; only without a DATABASE_URL

        candidate = Path(pgserver.__file__).parent / "pginstall" / "bin" / name
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: install the 'local' extra (pgserver) or PostgreSQL's client tools")
    return found


def _libpq_args(database: str) -> tuple[list[str], dict]:
    params = connection.settings_dict
    args = ["--dbname", database]
    if params.get("HOST"):
        args += ["--host", params["HOST"]]
    if params.get("PORT"):
        args += ["--port", str(params["PORT"])]
    if params.get("USER"):
        args += ["--username", params["USER"]]
    env = dict(os.environ, PGPASSWORD=params.get("PASSWORD") or "")
    return args, env


def dump(database: str, *, schema_only: bool = False) -> str:
    """pg_dump of one database on the server the default connection points at, without volatile lines."""
    args, env = _libpq_args(database)
    command = [pg_binary("pg_dump"), *args, "--no-owner", "--no-privileges", "--inserts", "--quote-all-identifiers"]
    if schema_only:
        command.append("--schema-only")
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    # Volatile version lines, and the schema comment (needs the schema's owner; nothing depends on it).
    lines = [line for line in output.splitlines()
             if not line.startswith("-- Dumped ") and not line.startswith('COMMENT ON SCHEMA "public"')]
    return "\n".join(lines) + "\n"


def scratch_database() -> str:
    name = f"portal_schema_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_url_for(name: str) -> str:
    params = connection.settings_dict
    host = params.get("HOST") or ""
    auth = f"{params.get('USER') or ''}:{params.get('PASSWORD') or ''}@"
    if host.startswith("/"):
        return f"postgresql://{auth}/{name}?host={host}"
    return f"postgresql://{auth}{host or 'localhost'}:{params.get('PORT') or 5432}/{name}"


def migrate_into(name: str) -> None:
    """Run every migration into database `name` in a child process (its own settings, own connection)."""
    env = dict(os.environ, DATABASE_URL=database_url_for(name), DJANGO_SETTINGS_MODULE="portal.settings.dev")
    subprocess.run([sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "migrate", "--noinput", "-v", "0"],
                   env=env, check=True, cwd=settings.BASE_DIR)


def render_snapshot() -> str:
    """Migrate a scratch database from nothing and dump it (schema and the rows migrations insert)."""
    name = scratch_database()
    try:
        migrate_into(name)
        body = dump(name)
    finally:
        drop_database(name)
    # applied timestamps change on every render; a fixed one keeps `make schema` diffs to real changes.
    body = re.sub(r"(INSERT INTO \"public\".\"django_migrations\" VALUES \(\d+, '[^']*', '[^']*', )'[^']*'\)",
                  r"\1'2026-01-01 00:00:00+00')", body)
    header = (
        "-- GenAI Portal schema snapshot: what every migration builds on an empty database.\n"
        "-- Generated by `make schema` (python manage.py schema_snapshot); do not edit by hand.\n"
        f"-- migrations fingerprint: {migrations_fingerprint()}\n"
    )
    return header + body


def write_snapshot(path: Path | None = None) -> Path:
    path = path or SNAPSHOT_PATH
    data = gzip.compress(render_snapshot().encode("utf-8"), mtime=0)  # mtime 0: same schema, same bytes
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False) as handle:
        handle.write(data)
    Path(handle.name).chmod(0o644)
    Path(handle.name).replace(path)
    return path
