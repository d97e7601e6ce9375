"""Kill the gateway mid-burst (SIGKILL), start it again, let the writer drain: the ledger holds exactly one
row for every request the client saw answered (issue #14, "recording, nothing lost")."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from apps.costs.models import UsageEvent
from tests.evals.test_resume_after_kill import worker_env

BASE_DIR = Path(__file__).resolve().parents[2]
BODY = {"model": "chat", "messages": [{"role": "user", "content": "Refunds take 14 days. How long?"}]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gateway(env: dict, port: int) -> subprocess.Popen:
    from portal.launcher import gateway_command  # served as `make run` serves it, one worker: the one killed

    process = subprocess.Popen(gateway_command(sys.executable, "127.0.0.1", str(port), 1), cwd=BASE_DIR, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 401:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the gateway did not start")


def test_after_a_kill_mid_burst_every_answered_request_is_on_the_ledger_once(local_catalog, gateway_key, drain,
                                                                            settings):
    _key, secret = gateway_key()
    env = worker_env(settings)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {secret}"}
    answered: list[str] = []
    lock = threading.Lock()

    def call(_n):
        try:
            response = httpx.post(url, json=BODY, headers=headers, timeout=10)
        except httpx.HTTPError:
            return
        if response.status_code == 200:
            with lock:
                answered.append(response.headers["x-portal-request-id"])

    gateway = start_gateway(env, port)
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            futures = [pool.submit(call, n) for n in range(80)]
            while len(answered) < 15 and not all(f.done() for f in futures):
                time.sleep(0.01)
            gateway.send_signal(signal.SIGKILL)  # mid-burst: no shutdown, no flush
            gateway.wait(timeout=10)
        before_restart = len(answered)
        gateway = start_gateway(env, port)
        for n in range(5):
            call(n)
    finally:
        gateway.kill()
        gateway.wait(timeout=10)

    drain()
    assert before_restart >= 15 and len(answered) == before_restart + 5
    ledger = list(UsageEvent.objects.filter(source="gateway").values_list("request_id", flat=True))
    assert set(answered) <= set(ledger)  # every answered request is recorded …
    assert len(ledger) == len(set(ledger)) and len(ledger) <= 85  # … once, and nothing was invented
