"""`make run`: start the embedded servers, migrate, load demo data, then serve web + worker + beat.

Ctrl-C (SIGINT, also when `make run &` started us with SIGINT ignored) or SIGTERM stops every child and the
embedded servers this launcher started; data stays under .portal/.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from portal import embedded

BASE_DIR = Path(__file__).resolve().parent.parent
HOST = os.environ.get("PORTAL_HOST", "127.0.0.1")
PORT = os.environ.get("PORTAL_PORT", "8000")
GATEWAY_HOST = os.environ.get("GATEWAY_HOST", HOST)
GATEWAY_PORT = os.environ.get("GATEWAY_PORT", "8001")


def _log(message: str) -> None:
    print(f"[portal] {message}", flush=True)


def _start_embedded(env: dict) -> bool:
    """Start what DATABASE_URL / REDIS_URL do not point at. Returns True if we started anything."""
    started = False
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = embedded.database_url()
        started = True
        _log(f"embedded PostgreSQL ready ({embedded.data_dir() / 'pgdata'})")
    if not env.get("REDIS_URL"):
        env["REDIS_URL"] = embedded.redis_url()
        started = True
        _log("embedded Redis ready")
    return started


def _wait_for_http(url: str, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


# The gateway server's options, shared with compose (tests/portal/test_compose.py holds them equal): the loop and
# parser measured (ADR 0134); keep-alive past a load balancer's usual 60 s idle timeout, so the balancer, not the
# gateway, closes an idle connection (no request lost to a close race); no access log (the ledger is the log).
GATEWAY_SERVER_OPTIONS = ["--loop", "uvloop", "--http", "httptools", "--timeout-keep-alive", "65",
                          "--no-access-log", "--log-level", "warning"]


def gateway_command(python: str, host: str, port: str, workers: str | int) -> list[str]:
    """How the LLM gateway is served (ADR 0134: uvicorn, its C parser, uvloop; the options of ADR 0125):
    `make run`, compose, and the benches that measure it."""
    return [python, "-m", "uvicorn", "portal.gateway_asgi:application", "--host", host, "--port", str(port),
            "--workers", str(workers), *GATEWAY_SERVER_OPTIONS]


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM both mean "stop everything". A shell starts background jobs (`make run &`, a script)
    with SIGINT ignored, and an ignored signal stays ignored across exec: handle it explicitly."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def main() -> int:
    install_signal_handlers()
    started_at = time.monotonic()
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("PORTAL_WARM_MODELS", "1")  # web and worker load the embedding model before they are ready
    env["PORTAL_RUN_ID"] = uuid.uuid4().hex  # /readyz counts only heartbeats of this run's worker
    started_embedded = not (env.get("DATABASE_URL") and env.get("REDIS_URL"))
    try:
        _start_embedded(env)
        return _serve(env, started_at, started_embedded)
    except KeyboardInterrupt:  # while starting or preparing the database, before _serve's own shutdown exists
        if started_embedded:
            embedded.stop()
            _log("embedded PostgreSQL and Redis stopped; data kept under .portal/")
        return 0


def _serve(env: dict, started_at: float, started_embedded: bool) -> int:
    python = sys.executable
    manage = [python, str(BASE_DIR / "manage.py")]

    # One process: snapshot into an empty database, any newer migrations, demo logins (system checks run here).
    _log("preparing the database…")
    subprocess.run([*manage, "portal_setup"], env=env, check=True, cwd=BASE_DIR)

    beat_schedule = BASE_DIR / ".portal" / "celerybeat-schedule"
    commands = {
        "web": [*manage, "runserver", f"{HOST}:{PORT}", "--noreload", "--skip-checks"]
        if os.environ.get("PORTAL_WEB", "runserver") == "runserver"
        else [python, "-m", "gunicorn", "portal.wsgi:application", "-b", f"{HOST}:{PORT}", "-w", "2", "--threads", "4"],
        "worker": [python, "-m", "celery", "-A", "portal", "worker", "-Q", "default,llm,indexing",
                   "--concurrency", os.environ.get("PORTAL_WORKER_CONCURRENCY", "2"), "-n", "portal@%h",
                   "--loglevel", "INFO"],
        "beat": [python, "-m", "celery", "-A", "portal", "beat", "--loglevel", "INFO",
                 "--schedule", str(beat_schedule)],
        # The LLM gateway (/v1/, ADR 0070) and the writer of its recorded calls to the ledger.
        "gateway": gateway_command(python, GATEWAY_HOST, GATEWAY_PORT, os.environ.get("GATEWAY_WORKERS", "2")),
        "recorder": [*manage, "gateway_recorder"],
    }
    children: dict[str, subprocess.Popen] = {}

    def start(name: str) -> None:
        children[name] = subprocess.Popen(commands[name], env=env, cwd=BASE_DIR, start_new_session=True)

    # The web server first: on two cores, worker and beat starting beside it would double its start-up.
    start("web")
    demo: subprocess.Popen | None = None

    def shutdown(*_args) -> None:
        # A second Ctrl-C must not abandon the children half-stopped: the stop is bounded (15 s, then kill).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _log("stopping…")
        if demo is not None and demo.poll() is None:
            demo.send_signal(signal.SIGTERM)
            demo.wait(timeout=15)
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        if started_embedded:
            embedded.stop()
            _log("embedded PostgreSQL and Redis stopped; data kept under .portal/")

    url = f"http://{HOST}:{PORT}/"
    try:
        if not _wait_for_http(f"{url}healthz"):
            _log("the web server did not come up; see the output above")
            shutdown()
            return 1
        _log(f"first page served {time.monotonic() - started_at:.1f}s after start")
        start("worker")
        start("beat")
        start("gateway")
        start("recorder")
        # The rest of the demo (catalog, evals, 90 days of usage, use cases) loads while the portal serves.
        demo = subprocess.Popen([*manage, "seed_demo"], env=env, cwd=BASE_DIR, start_new_session=True)
        _log("loading the rest of the demo data in the background (idempotent)…")
        print(
            f"\n  GenAI Portal is running at {url}\n"
            f"  LLM gateway (OpenAI-compatible): base URL http://{GATEWAY_HOST}:{GATEWAY_PORT}/v1\n"
            "    key: python manage.py create_gateway_key --team support-ai --feature demo\n"
            "  Demo logins (dev only; password for all: portal-demo):\n"
            "    admin (staff) · olivia (owner, Support AI) · evan (engineer, Support AI)\n"
            "    erin (engineer, Search) · pat (viewer/PM, both teams)\n"
            "    sam (council: security) · priya (privacy) · lee (legal) · paula (product)\n"
            "  Ctrl-C stops everything.\n",
            flush=True,
        )
        while True:
            if demo is not None and demo.poll() is not None:
                _log("demo data ready" if demo.returncode == 0 else f"demo data failed (exit {demo.returncode})")
                demo = None
            for name, child in children.items():
                if child.poll() is not None:
                    _log(f"{name} exited with code {child.returncode}; stopping the rest")
                    raise KeyboardInterrupt
            time.sleep(0.5)
    except KeyboardInterrupt:
        shutdown()
        return 0


if __name__ == "__main__":
    sys.path.insert(0, str(BASE_DIR))
    raise SystemExit(main())
