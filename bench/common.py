"""Shared set-up for benchmarks: a `portal_bench` database on the same server as dev, migrated."""

from __future__ import annotations

import importlib.util
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = BASE_DIR / "bench" / "results"
sys.path.insert(0, str(BASE_DIR))


def embedded_module():
    """portal/embedded.py loaded on its own (it imports nothing from the portal): importing the `portal` package
    would configure Celery, which reads the settings, before DATABASE_URL points at the benchmark database."""
    spec = importlib.util.spec_from_file_location("_portal_embedded", BASE_DIR / "portal" / "embedded.py")
    embedded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(embedded)
    return embedded


def create_bench_database(database: str) -> None:
    """Create `database` on the embedded PostgreSQL if needed and point DATABASE_URL at it."""
    admin_url = embedded_module().database_url()
    import psycopg

    with psycopg.connect(admin_url.replace("/portal?", "/postgres?"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", [database]).fetchone():
            conn.execute(f'CREATE DATABASE "{database}"')
    os.environ["DATABASE_URL"] = admin_url.replace("/portal?", f"/{database}?")


def use_bench_database(database: str = "portal_bench") -> None:
    """Before anything imports `portal`: DATABASE_URL -> a dedicated benchmark database (unless one is set), and
    the cache keys under their own prefix."""
    if os.environ.get("DATABASE_URL"):
        return
    create_bench_database(database)
    os.environ.setdefault("CACHE_KEY_PREFIX", "bench")


def stop_process(proc: subprocess.Popen, timeout: float, *, group: bool = False) -> None:
    """SIGTERM, wait up to `timeout` seconds, then SIGKILL (the whole process group with `group`)."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        if group:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:  # not a group leader (started without start_new_session)
                proc.kill()
        else:
            proc.kill()


def setup_django(database: str = "portal_bench") -> None:
    """Point Django at a dedicated benchmark database, create and migrate it."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DEBUG", "false")  # measure what production runs, not the debug toolbar of Django
    if not os.environ.get("DATABASE_URL"):
        create_bench_database(database)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB RAM, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary_ms(samples_s: list[float]) -> dict:
    ms = [s * 1000 for s in samples_s]
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 2), "p95_ms": round(percentile(ms, 95), 2),
            "p99_ms": round(percentile(ms, 99), 2), "max_ms": round(max(ms), 2)}


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=BASE_DIR, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def client_get_times(client, url: str, n: int, **headers) -> dict:
    """`n` GETs of `url` through a Django test client (each must answer 200): the times' summary."""
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(url, **headers)
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
    return summary_ms(samples)


def client_queries(client, url: str) -> int:
    """How many SQL queries one GET of `url` makes."""
    from django.db import connection  # why: this module is imported before Django is set up
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        client.get(url)
    return len(ctx.captured_queries)
