"""A real `celery -A portal worker -Q llm` subprocess, started and stopped (the resume-after-kill test and
bench/evals_run.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]


def worker_start(name: str, *, env: dict, pool: str = "threads", concurrency: int = 4, log: Path | None = None,
                 own_group: bool = False) -> tuple[subprocess.Popen, str]:
    """Start a worker named `name-<random>@host`; its output goes to `log` (appended) or nowhere. `own_group`
    puts it in a process group of its own, so a SIGKILL takes its pool children too."""
    hostname = f"{name}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    handle = open(log, "ab") if log else None  # noqa: SIM115 - closed by worker_stop
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", "llm", "--pool", pool,
         "--concurrency", str(concurrency), "--hostname", hostname, "--loglevel", "WARNING", "--without-mingle",
         "--without-gossip"], cwd=BASE_DIR, env=env, stdout=handle or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if handle else subprocess.DEVNULL, start_new_session=own_group)
    process._log_handle = handle
    process._own_group = own_group
    return process, hostname


def worker_stop(process: subprocess.Popen, sig=signal.SIGTERM) -> None:
    """Stop with `sig` (SIGKILL: like a lost machine) and wait; kill it when it does not end within 30 s."""
    if sig == signal.SIGKILL and process._own_group and process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)  # the parent and its pool children
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process._log_handle:
        process._log_handle.close()


def wait_for(predicate, timeout: float, what: str = "the condition", log: Path | None = None):
    """Poll `predicate` until it returns something true (returned); on timeout fail, with the worker log's tail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise AssertionError(f"timed out waiting for {what}" + (f"\n--- worker log ---\n{tail}" if log else ""))
        time.sleep(0.05)
