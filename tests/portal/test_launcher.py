"""`make run` once the venv exists: `python -m portal.launcher` on a fresh data directory starts the embedded
servers, builds the schema, serves the login page, brings up a Celery worker and beat (readiness turns
green), lets a demo person log in, and stops everything on Ctrl-C to its process group even when started as a
background job (SIGINT ignored, as `make run &` from a script is). The real thing, end to end."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(opener, url: str):
    try:
        with opener.open(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def launcher():
    data_dir = tempfile.mkdtemp(prefix="plaunch-", dir="/tmp")  # short: unix socket paths
    port, gateway_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "PORTAL_TEST_SUFFIX",
                        "PORTAL_TEST_REDIS_DB"}}
    # PORTAL_WARM_MODELS=0: the model warm-up has its own tests (tests/portal/test_warmup.py); here it would only
    # add a model load to the readiness wait of a suite that runs beside others on two cores.
    env.update(PORTAL_DATA_DIR=data_dir, PORTAL_PORT=str(port), PORTAL_WORKER_CONCURRENCY="1",
               PORTAL_WARM_MODELS="0", GATEWAY_PORT=str(gateway_port))
    log = Path(data_dir) / "launcher.log"
    with log.open("wb") as handle:
        # As a shell starts a background job: SIGINT ignored (and inherited as ignored across exec).
        process = subprocess.Popen([sys.executable, "-m", "portal.launcher"], cwd=BASE_DIR, env=env,
                                   stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        try:
            yield process, f"http://127.0.0.1:{port}", log, f"http://127.0.0.1:{gateway_port}/v1"
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
            subprocess.run([sys.executable, "-m", "portal.embedded", "stop"], cwd=BASE_DIR,
                           env=dict(env, PORTAL_DATA_DIR=data_dir), capture_output=True, timeout=60)
            shutil.rmtree(data_dir, ignore_errors=True)


def test_make_run_serves_the_portal_with_worker_and_beat_and_stops_cleanly_on_ctrl_c(launcher):
    process, url, log, gateway = launcher
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    status, page = wait_for(lambda: get(opener, f"{url}/accounts/login/"), 120, "the login page")
    assert status == 200 and "csrfmiddlewaretoken" in page, log.read_text()
    output = log.read_text()
    assert "loaded the schema snapshot" in output  # a fresh data dir: the fast path
    assert "GenAI Portal is running at" in output and "portal-demo" in output

    # The worker and beat start once the first page is served; readiness names the worker.
    ready = wait_for(lambda: (lambda s, body: s == 200 and json.loads(body))(*get(opener, f"{url}/readyz")),
                     90, "readiness with a live worker")
    assert ready["checks"]["worker"]["ok"] and ready["checks"]["database"]["ok"]

    # The LLM gateway runs beside it, its base URL printed: without a key it answers OpenAI's 401.
    assert f"base URL {gateway}" in log.read_text()
    status, body = wait_for(lambda: get(opener, f"{gateway}/models"), 60, "the gateway")
    assert status == 401 and json.loads(body)["error"]["type"] == "authentication_error"

    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": "evan", "password": "portal-demo",
                                   "csrfmiddlewaretoken": token}).encode()
    request = urllib.request.Request(f"{url}/accounts/login/", data=form, headers={"Referer": f"{url}/accounts/login/"})
    with opener.open(request, timeout=10) as response:
        assert response.status == 200
        assert "Evan" in response.read().decode()  # the home page, signed in

    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C to the job's process group
    assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
    output = log.read_text()
    assert "stopping" in output and "embedded PostgreSQL and Redis stopped" in output
    with pytest.raises(OSError):  # the web server went with it
        urllib.request.urlopen(f"{url}/healthz", timeout=2)


def test_the_launcher_handles_sigint_and_sigterm_even_when_started_with_sigint_ignored():
    """The cheap half of the above: the handlers the launcher installs before it starts anything."""
    code = ("import signal\n"
            "from portal import launcher\n"
            "assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN\n"
            "launcher.install_signal_handlers()\n"
            "for sig in (signal.SIGINT, signal.SIGTERM):\n"
            "    try:\n"
            "        signal.raise_signal(sig)\n"
            "    except KeyboardInterrupt:\n"
            "        print('stopped on', sig.name)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, capture_output=True, text=True, timeout=60,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["stopped on SIGINT", "stopped on SIGTERM"]
