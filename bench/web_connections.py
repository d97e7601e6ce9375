"""Database connections under concurrent clients of the dev server (issue #12): they must stay bounded.

The outage: API clients that open a fresh HTTP connection for each call and never close it left one idle
runserver thread per socket, each holding a PostgreSQL connection (CONN_MAX_AGE=60), until the server
refused connections. `load()` plays such clients against a running portal: each keeps one keep-alive
connection and every few requests opens another it abandons (bounded), while a sampler reads
pg_stat_activity and /readyz. `tests/portal/test_connection_bound.py` runs it for seconds against
runserver; `python -m bench.web_connections` runs `make run` (launcher: web, worker, beat, demo data)
under 50 API clients for 2 minutes, then a 10-minute soak, and prints the figures for BENCHMARKS.md.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

from bench.common import stop_process

ABANDON_EVERY = 5  # every 5th request goes over a new connection that the client then never closes
ABANDONED_PER_CLIENT = 20  # ... keeping at most this many open per client (the loop stays bounded)


@dataclass
class LoadResult:
    clients: int
    seconds: float
    requests: int = 0
    statuses: dict = field(default_factory=dict)
    errors: int = 0  # transport errors (refused, reset, timed out)
    peak_connections: int = 0
    samples: int = 0
    readyz_failures: list = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)

    def as_dict(self) -> dict:
        return {"clients": self.clients, "seconds": round(self.seconds, 1), "requests": self.requests,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())}, "errors_5xx": self.server_errors,
                "transport_errors": self.errors, "peak_db_connections": self.peak_connections,
                "samples": self.samples, "readyz_not_ready": len(self.readyz_failures)}


def _request(conn: http.client.HTTPConnection, path: str, headers: dict) -> int:
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def load(base_url: str, *, clients: int, seconds: float, paths: list[str], count_connections,
         headers: dict | None = None, sample_every: float = 0.5) -> LoadResult:
    """Run `clients` threads against `base_url` for `seconds`; `count_connections()` -> current DB connections.

    Every loop is bounded by the deadline; abandoned sockets are closed at the end.
    """
    parsed = urlparse(base_url)
    host, port = parsed.hostname, parsed.port
    headers = dict(headers or {})
    result = LoadResult(clients=clients, seconds=seconds)
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    abandoned: list[http.client.HTTPConnection] = []

    def record(status: int | None) -> None:
        with lock:
            result.requests += 1
            if status is None:
                result.errors += 1
            else:
                result.statuses[status] = result.statuses.get(status, 0) + 1

    def client(index: int) -> None:
        keep = http.client.HTTPConnection(host, port, timeout=30)
        mine: list[http.client.HTTPConnection] = []
        n = index
        while time.monotonic() < deadline:
            path = paths[n % len(paths)]
            n += 1
            try:
                if n % ABANDON_EVERY == 0:
                    fresh = http.client.HTTPConnection(host, port, timeout=30)
                    status = _request(fresh, path, headers)
                    mine.append(fresh)  # left open and idle, as the leaking clients did
                    if len(mine) > ABANDONED_PER_CLIENT:
                        mine.pop(0).close()
                else:
                    status = _request(keep, path, headers)
            except (OSError, http.client.HTTPException):
                status = None
                keep.close()
                keep = http.client.HTTPConnection(host, port, timeout=30)
                time.sleep(0.2)
            record(status)
            time.sleep(0.02)
        keep.close()
        with lock:
            abandoned.extend(mine)

    def sampler() -> None:
        probe = http.client.HTTPConnection(host, port, timeout=30)
        while time.monotonic() < deadline:
            with lock:
                result.peak_connections = max(result.peak_connections, count_connections())
                result.samples += 1
            try:
                status = _request(probe, "/readyz", {})
                body = None
                if status != 200:
                    body = status
            except (OSError, http.client.HTTPException) as exc:
                body = type(exc).__name__
                probe.close()
                probe = http.client.HTTPConnection(host, port, timeout=30)
            if body is not None:
                with lock:
                    result.readyz_failures.append(body)
            time.sleep(sample_every)
        probe.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    threads.append(threading.Thread(target=sampler, daemon=True))
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    result.peak_connections = max(result.peak_connections, count_connections())
    result.seconds = time.monotonic() - started
    for conn in abandoned:
        conn.close()
    return result


def connection_counter(dsn: str, where: str = "datname = current_database()"):
    """A callable returning how many client backends pg_stat_activity shows for `where` (its own excluded)."""
    import psycopg

    conn = psycopg.connect(dsn, autocommit=True)

    def count() -> int:
        row = conn.execute(f"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                           f"AND pid <> pg_backend_pid() AND {where}").fetchone()
        return int(row[0])

    count.close = conn.close
    return count


# --- the bench: `make run` under load -------------------------------------------------------------

def _bench(clients: int, phases: list[tuple[str, float]]) -> dict:
    import os
    import shutil
    import subprocess
    import sys
    import tempfile
    import urllib.request
    from pathlib import Path

    from bench.common import BASE_DIR

    data_dir = tempfile.mkdtemp(prefix="pconn-", dir="/tmp")
    port = "8767"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(PORTAL_DATA_DIR=data_dir, PORTAL_PORT=port, LOG_LEVEL="WARNING")
    log = open(os.path.join(data_dir, "launcher.log"), "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([sys.executable, "-m", "portal.launcher"], cwd=BASE_DIR, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    out: dict = {"clients": clients, "server": "make run (runserver + celery worker + beat + demo data)"}
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the portal did not become ready; see {data_dir}/launcher.log")
            time.sleep(1)
        # Wait for the background demo data (its teams and people), then a read token for an API client.
        from portal import embedded

        os.environ["PORTAL_DATA_DIR"] = data_dir
        dsn = embedded.database_url()
        manage_env = dict(env, DATABASE_URL=dsn, REDIS_URL=embedded.redis_url())
        while b"demo data ready" not in Path(data_dir, "launcher.log").read_bytes():
            if time.monotonic() > deadline + 600:
                raise RuntimeError("demo data did not finish loading")
            time.sleep(2)
        token = subprocess.run([sys.executable, "manage.py", "create_api_token", "--user", "evan", "--team",
                                "support-ai", "--name", "bench-connections"], cwd=BASE_DIR, env=manage_env,
                               capture_output=True, text=True, check=True).stdout.strip()
        counter = connection_counter(dsn, "true")  # every client backend of the server: web, worker, beat
        max_connections = int(psycopg_show(dsn, "max_connections"))
        out["max_connections"] = max_connections
        paths = ["/api/v1/prompts", "/api/v1/use-cases", "/readyz", "/api/v1/prompts"]
        for name, seconds in phases:
            result = load(base, clients=clients, seconds=seconds, paths=paths, count_connections=counter,
                          headers={"Authorization": f"Bearer {token}"}, sample_every=1.0)
            out[name] = {**result.as_dict(), "minutes": round(result.seconds / 60, 1)}
            print(json.dumps({name: out[name]}), file=sys.stderr, flush=True)
        counter.close()
    finally:
        stop_process(proc, 90, group=True)
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    return out


def psycopg_show(dsn: str, name: str) -> str:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SHOW {name}").fetchone()[0]


def run(clients: int = 50, minutes: float = 2, soak_minutes: float = 10) -> dict:
    return _bench(clients, [("load", minutes * 60), ("soak", soak_minutes * 60)])


if __name__ == "__main__":
    import argparse
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=2)
    parser.add_argument("--soak-minutes", type=float, default=10)
    args = parser.parse_args()
    print(json.dumps(run(args.clients, args.minutes, args.soak_minutes), indent=2))
