"""Set-up shared by the costs benchmarks.

bench.common.setup_django() sets DATABASE_URL after `portal` (and so the settings) may already be imported,
in which case Django stays on the dev database. These benches therefore resolve the database URL in a
child process and export it before anything imports Django or the portal package.
"""

from __future__ import annotations

import os
import subprocess
import sys

from bench.common import BASE_DIR


def use_database(database: str) -> str:
    """Create `database` on the embedded server if needed and point DATABASE_URL at it (before Django loads)."""
    if os.environ.get("DATABASE_URL") and f"/{database}?" in os.environ["DATABASE_URL"]:
        return os.environ["DATABASE_URL"]
    code = (
        "import os, psycopg\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'portal.settings.dev')\n"
        "from portal import embedded\n"
        "url = embedded.database_url()\n"
        f"db = {database!r}\n"
        "with psycopg.connect(url.replace('/portal?', '/postgres?'), autocommit=True) as c:\n"
        "    if not c.execute('SELECT 1 FROM pg_database WHERE datname=%s', [db]).fetchone():\n"
        "        c.execute(f'CREATE DATABASE \"{db}\"')\n"
        "print(url.replace('/portal?', f'/{db}?'))\n"
    )
    url = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, capture_output=True, text=True,
                         check=True).stdout.strip().splitlines()[-1]
    os.environ["DATABASE_URL"] = url
    return url


def setup(database: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    use_database(database)
    from bench.common import setup_django

    setup_django(database)
    from django.db import connection

    assert connection.settings_dict["NAME"] == database, connection.settings_dict["NAME"]
