"""Fast SQL for the ledger's hot path: the bottom of costs (no costs module imported here).

The ledger insert and the rollup upserts send arrays of thousands of values; Django's cursor quotes each
element in Python, which costs more than the database's whole work, so they go through `execute_fast`.
"""

from __future__ import annotations

import psycopg
from django.db import connection


def fast_cursor():
    """A psycopg cursor with server-side binding and binary parameters on Django's own connection (same
    transaction). Django's default client-side binding quotes every array element in Python: for batch
    inserts of thousands of values that quoting costs more than the database's whole work."""
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def execute_fast(sql: str, params) -> list[tuple]:
    """Execute with every parameter sent in binary (%b): arrays are packed without per-element quoting."""
    with fast_cursor() as cursor:
        cursor.execute(sql.replace("%s", "%b"), params)
        return cursor.fetchall() if cursor.description else []
