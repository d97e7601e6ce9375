"""Set-up shared by the RAG benchmarks: a `portal_bench_rag` database on the dev server, migrated.

DATABASE_URL must be set before Django's settings load, and importing anything under `portal` loads them
(portal/__init__ imports the Celery app, which reads the settings), so the embedded server's URL is found by
loading portal/embedded.py on its own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench.common import create_bench_database

BASE_DIR = Path(__file__).resolve().parent.parent
DATABASE = "portal_bench_rag"


def scifact_dir() -> Path:
    """The BEIR SciFact folder (corpus.jsonl, queries.jsonl, qrels/): SCIFACT_DIR, or a clear stop (docs/rag.md)."""
    raw = os.environ.get("SCIFACT_DIR")
    if not raw:
        raise SystemExit("Set SCIFACT_DIR to the BEIR SciFact folder: download "
                         "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/scifact.zip and unzip it.")
    return Path(raw)


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def setup(database: str = DATABASE) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DEBUG", "false")
    if not os.environ.get("DATABASE_URL"):
        create_bench_database(database)
    sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    assert connection.settings_dict["NAME"] == database or os.environ.get("DATABASE_URL"), "wrong database"
    call_command("migrate", verbosity=0)
    from apps.core.request_context import acting_as
    from apps.costs.services import prices_seed
    from apps.llm.services import catalog_seed_local
    from portal.demo import seed_demo_accounts

    with acting_as(None):
        seed_demo_accounts()
        catalog_seed_local()
        prices_seed()


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0:3].__str__()
    except OSError:
        return "unknown"
