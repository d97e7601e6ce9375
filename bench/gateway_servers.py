"""The gateway's server choice, by measurement (ADRs 0070, 0134): framework × server on a no-op proxy path.

    .venv/bin/python -m bench.gateway_servers [--requests 3000] [--concurrency 32]

For each of raw ASGI / Django async view under uvicorn (h11 on asyncio; httptools on uvloop, as the gateway is
served since ADR 0134) / granian: one server process on a free port, then
(1) sequential requests on one kept-alive connection: p50 / p99 of the round trip (what the front door adds
at low load, client included: the client is the same for every row), and (2) `--concurrency` clients at once:
requests per second and p50 / p99. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent
BODY = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hello"}]}).encode()
SERVERS = {
    "uvicorn": lambda app, port: [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--no-access-log",
                                  "--log-level", "warning", "--loop", "asyncio", "--http", "h11"],
    "uvicorn-httptools": lambda app, port: [sys.executable, "-m", "uvicorn", app, "--port", str(port),
                                            "--no-access-log", "--log-level", "warning", "--loop", "uvloop",
                                            "--http", "httptools"],
    "granian": lambda app, port: [sys.executable, "-m", "granian", "--interface", "asgi", "--port", str(port),
                                  "--workers", "1", "--no-ws", "--log-level", "warning", app],
}
APPS = {"raw ASGI": "bench.gateway_noop:raw_app", "Django async view": "bench.gateway_noop:django_app"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            httpx.post(url, content=BODY, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("server did not come up")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


def sequential(url: str, n: int) -> dict:
    times = []
    with httpx.Client() as client:
        for _ in range(50):
            client.post(url, content=BODY)
        for _ in range(n):
            started = time.perf_counter()
            client.post(url, content=BODY)
            times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": pct(times, 0.5), "p99_ms": pct(times, 0.99), "mean_ms": round(statistics.fmean(times), 3)}


async def concurrent(url: str, n: int, concurrency: int) -> dict:
    times: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:
        async def worker(count):
            for _ in range(count):
                started = time.perf_counter()
                await client.post(url, content=BODY)
                times.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"rps": round(len(times) / elapsed), "p50_ms": pct(times, 0.5), "p99_ms": pct(times, 0.99)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    results = []
    for app_label, app in APPS.items():
        for server, command in SERVERS.items():
            port = free_port()
            proc = subprocess.Popen(command(app, port), cwd=BASE_DIR, env={**os.environ, "PYTHONPATH": str(BASE_DIR)})
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            try:
                wait_up(url, proc)
                row = {"framework": app_label, "server": server, "sequential": sequential(url, args.requests),
                       "concurrent": asyncio.run(concurrent(url, args.requests, args.concurrency))}
            finally:
                proc.terminate()
                proc.wait(timeout=10)
            print(json.dumps(row), file=sys.stderr, flush=True)
            results.append(row)
    print(json.dumps({"load_average": os.getloadavg(), "requests": args.requests,
                      "concurrency": args.concurrency, "results": results}, indent=1))


if __name__ == "__main__":
    main()
