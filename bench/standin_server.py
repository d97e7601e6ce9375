"""The stand-in upstream's CPU per request on uvicorn's two HTTP parsers (h11, httptools), turns alternating: the
stand-in shares the two cores with the gateway in every gateway bench, so its CPU is taken from the gateway's.

    .venv/bin/python -m bench.standin_server [--rate 500] [--seconds 8] [--rounds 2]

Each turn serves `StandIn(latency_ms=20)` (apps/llm/standin.py) with `uvicorn_config(..., http=...)` in its own
process and loads it open-loop from another (bench.gateway_load's generator). Prints one JSON object: per parser the
median CPU per request of the server process, and the client's p50 / p99.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from bench.common import BASE_DIR, machine, now_utc, setup_django, stop_process
from bench.gateway_load import BODY, cpu_seconds, load

SERVE = """
import sys, uvicorn
from apps.llm.standin import StandIn, uvicorn_config
uvicorn.Server(uvicorn_config(StandIn(latency_ms=20), port=int(sys.argv[1]), http=sys.argv[2])).run()
"""


def turn(http: str, rate: float, seconds: float) -> dict:
    from bench.gateway_path import wait  # why: imports httpx; only the orchestrator needs it
    from bench.gateway_servers import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVE, str(port), http], cwd=BASE_DIR,
                              env={**os.environ, "PYTHONPATH": str(BASE_DIR)})
    try:
        url = f"http://127.0.0.1:{port}"
        wait(f"{url}/standin/stats", ok=(200,), proc=server)
        body = {**BODY, "model": "standin-chat"}
        load(f"{url}/v1/chat/completions", 50, 2, body)  # warm
        before = cpu_seconds(server.pid)
        run = load(f"{url}/v1/chat/completions", rate, seconds, body)
        return {"cpu_ms_per_request": (cpu_seconds(server.pid) - before) * 1000 / max(1, run["sent"] or 0),
                "p50_ms": run["p50_ms"], "p99_ms": run["p99_ms"], "ok": run["ok"], "sent": run["sent"]}
    finally:
        stop_process(server, 10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    setup_django()
    turns = {"h11": [], "httptools": []}
    for _ in range(args.rounds):
        for http in turns:
            turns[http].append(turn(http, args.rate, args.seconds))
    result = {"started": now_utc(), "machine": machine(), "rate": args.rate, "seconds": args.seconds, "turns": turns}
    for http, runs in turns.items():
        result[http] = {name: round(statistics.median(r[name] for r in runs), 3)
                        for name in ("cpu_ms_per_request", "p50_ms", "p99_ms")}
    result["cpu_ratio_httptools_to_h11"] = round(result["httptools"]["cpu_ms_per_request"]
                                                 / result["h11"]["cpu_ms_per_request"], 3)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
