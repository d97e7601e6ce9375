"""Time from `python -m portal.launcher` (venv ready) to the first page served, cold and warm.

Cold: a fresh data directory (initdb, migrations, demo data). Warm: the same directory again, as a
second `make run` would. The launcher runs on its own port and data dir, then gets SIGTERM.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from bench.common import BASE_DIR, stop_process

PORT = "8766"


def _first_page_seconds(data_dir: str) -> float:
    env = dict(os.environ, PORTAL_DATA_DIR=data_dir, PORTAL_PORT=PORT, LOG_LEVEL="WARNING")
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "portal.launcher"], cwd=BASE_DIR, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = started + 180
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/accounts/login/", timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.1)
            if proc.poll() is not None:
                raise RuntimeError(f"launcher exited early with {proc.returncode}")
        raise RuntimeError("no page within 180 s")
    finally:
        stop_process(proc, 60)


def run() -> dict:
    # A short path keeps the unix sockets under the length limit.
    data_dir = tempfile.mkdtemp(prefix="pbench-", dir="/tmp")
    try:
        cold = _first_page_seconds(data_dir)
        warm = _first_page_seconds(data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return {"cold_first_page_s": round(cold, 2), "warm_first_page_s": round(warm, 2), "goal_s": 15}


if __name__ == "__main__":
    print(run())
