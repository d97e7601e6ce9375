"""Where the gateway's CPU goes, and what a change saves: CPU per request of this tree's gateway beside a baseline
tree's, in the same run, and a py-spy profile of the request path.

    .venv/bin/python -m bench.gateway_profile [--rate 100] [--seconds 15] [--rounds 3] [--latency-ms 20]
        [--baseline DIR] [--workers 1] [--other-workers 2] [--profile] [--top 30] [--raw FILE]

One stand-in upstream (fixed latency), one recorder, one key with request and token limits (as bench.gateway_load),
and one gateway per tree (served as `make run` serves it): this one and, with `--baseline DIR` (a checkout of another commit, e.g.
`git archive main | tar -x -C /tmp/base`), that one, on the same database and Redis. The trees take turns
(A B A B …, `--rounds` each) at the same open-loop rate (bench.gateway_load's generator); each turn's figure is
the gateway process tree's user+system CPU over the requests it handled. The machine is shared: compare the
ratio within a run, not figures across runs. `--other-workers N` adds this tree with N workers as one more
contender (CPU per request, p50 / p99 at the same rate). `--profile` records this tree's gateway with py-spy (the `dev`
extra) during one more turn and prints the functions with the most samples, by own time and including callees.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import BASE_DIR, setup_django, stop_process
from bench.gateway_load import BODY, cpu_seconds, load, settle


def start_gateway(tree: Path, port: int, env: dict, workers: int) -> subprocess.Popen:
    from bench.gateway_path import wait  # why: imports httpx; only after setup
    from portal.launcher import gateway_command  # why: after setup (the portal package configures Celery)

    # each tree under the server `make run` serves with now: the figures compare the application's code
    process = subprocess.Popen(gateway_command(sys.executable, "127.0.0.1", str(port), workers),
                               cwd=tree, env={**env, "PYTHONPATH": str(tree)})
    wait(f"http://127.0.0.1:{port}/v1/models", proc=process)
    return process


def turn(url: str, secret: str, server: subprocess.Popen, rate: float, seconds: float, stats_url: str) -> dict:
    settle(url, BODY, secret, stats_url)
    before = cpu_seconds(server.pid)
    run = load(url, rate, seconds, BODY, secret)
    settle(url, BODY, secret, stats_url)
    handled = (run.get("sent") or 0) + (run.get("warm_up") or 0) + 2
    return {"cpu_ms_per_request": round((cpu_seconds(server.pid) - before) * 1000 / handled, 3),
            "p50_ms": run.get("p50_ms"), "p99_ms": run.get("p99_ms"), "errors": run.get("errors"),
            "load_average": round(os.getloadavg()[0], 2)}


def profile(pid: int, seconds: float, top: int, raw: str = "") -> dict:
    """py-spy samples of the gateway's process tree (collapsed stacks), summed per function (`raw`: keep the
    collapsed stacks in that file too)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(raw) if raw else Path(tmp) / "stacks.txt"
        subprocess.run([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid), "--subprocesses",
                        "--rate", "500", "--duration", str(int(seconds)), "--format", "raw", "--nonblocking",
                        "--output", str(out)], check=True, capture_output=True)
        lines = out.read_text().splitlines()
    own, inclusive, total = collections.Counter(), collections.Counter(), 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n

    def share(counter):
        return [{"function": name, "pct": round(100 * n / total, 1)} for name, n in counter.most_common(top)]

    return {"samples": total, "own": share(own), "inclusive": share(inclusive)}


def profiled_load(pid: int, url: str, rate: float, seconds: float, body: dict, auth: str, top: int,
                  raw: str = "") -> dict:
    """`profile` of the server `pid` during one open-loop turn at `rate` against `url`."""
    import threading

    holder: dict = {}
    thread = threading.Thread(target=lambda: holder.update(profile(pid, seconds, top, raw)))
    thread.start()
    time.sleep(0.5)
    load(url, rate, seconds, body, auth)
    thread.join()
    return holder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--baseline", default="", help="a checkout of the tree to compare with")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--other-workers", type=int, default=0, help="also this tree with this many workers")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--raw", default="", help="with --profile: keep py-spy's collapsed stacks in this file")
    args = parser.parse_args()
    setup_django()
    from django.conf import settings  # why: after setup_django()

    from apps.core import redis as portal_redis
    from apps.gateway import recording
    from apps.gateway.services import gateway_key_create
    from bench.gateway_path import standin_catalog, wait
    from bench.gateway_servers import free_port

    env = {**os.environ, "REDIS_URL": settings.REDIS_URL, "DATABASE_URL": os.environ["DATABASE_URL"]}
    trees = {"this": (BASE_DIR, args.workers)}
    if args.baseline:
        trees["baseline"] = (Path(args.baseline).resolve(), args.workers)
    if args.other_workers:
        trees[f"this_{args.other_workers}_workers"] = (BASE_DIR, args.other_workers)
    standin_port = free_port()
    procs: dict[str, subprocess.Popen] = {}
    try:
        procs["standin"] = subprocess.Popen(
            [sys.executable, "manage.py", "llm_standin", "--port", str(standin_port), "--latency-ms",
             str(args.latency_ms)], cwd=BASE_DIR, env={**env, "PYTHONPATH": str(BASE_DIR)}, stdout=subprocess.DEVNULL)
        stats_url = f"http://127.0.0.1:{standin_port}/standin/stats"
        wait(stats_url, ok=(200,), proc=procs["standin"])
        team = standin_catalog(standin_port)
        secret = gateway_key_create(team=team, name="bench-profile", feature="bench", requests_per_minute=10_000_000,
                                    tokens_per_minute=2_000_000_000).secret
        portal_redis.client().delete(recording.stream_key())
        procs["recorder"] = subprocess.Popen([sys.executable, "manage.py", "gateway_recorder"], cwd=BASE_DIR,
                                             env={**env, "PYTHONPATH": str(BASE_DIR)})
        urls = {}
        for name, (tree, workers) in trees.items():
            port = free_port()
            procs[name] = start_gateway(tree, port, env, workers)
            urls[name] = f"http://127.0.0.1:{port}/v1/chat/completions"
            turn(urls[name], secret, procs[name], args.rate, 5, stats_url)  # warm-up, not counted
        rounds: dict[str, list[dict]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name in trees:
                rounds[name].append(turn(urls[name], secret, procs[name], args.rate, args.seconds, stats_url))
        result: dict = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rate": args.rate,
                        "seconds": args.seconds, "workers": args.workers, "upstream_latency_ms": args.latency_ms,
                        "rounds": rounds,
                        "median_cpu_ms_per_request": {name: statistics.median(r["cpu_ms_per_request"] for r in runs)
                                                      for name, runs in rounds.items()}}
        if args.baseline:
            medians = result["median_cpu_ms_per_request"]
            result["this_over_baseline"] = round(medians["this"] / medians["baseline"], 3)
        if args.profile:
            result["profile"] = profiled_load(procs["this"].pid, urls["this"], args.rate, args.seconds, BODY, secret,
                                              args.top, args.raw)
        print(json.dumps(result, indent=1))
    finally:
        for process in procs.values():
            stop_process(process, 10)
        portal_redis.client().delete(recording.stream_key())


if __name__ == "__main__":
    main()
