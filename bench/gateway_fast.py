"""The gateway's added latency and CPU per request against its floor and a baseline tree, in one run, turns
alternating (issue #14's figures; BENCHMARKS.md "gw-fast").

    .venv/bin/python -m bench.gateway_fast [--rates 100,500] [--seconds 8] [--rounds 2] [--latency-ms 20]
        [--baseline DIR] [--workers 1,2] [--plain] [--no-floor] [--contender JSON ...] [--profile NAME]

Contenders, each its own server process on the same machine, database and Redis, against one stand-in upstream
(`manage.py llm_standin --latency-ms L`) with one recorder running:

  direct       the stand-in itself: the upstream time every "added" figure is measured from
  floor        bench/gateway_noop.py `forward_app` under the gateway's server and options: read, parse,
               forward with the gateway's upstream client (aiohttp), parse the answer, answer. Nothing else.
  this_Nw      this tree's gateway with N workers, served as `make run` serves it
               (portal/launcher.py `gateway_command`)
  base_Nw      `--baseline DIR` (e.g. `git archive main | tar -x -C DIR`) with N workers, served as main served it
               (its launcher's `gateway_command`; granian with the options of its time for a tree older than that)

The key is a **full key** unless `--plain`: request and token limits, a dollars-per-day budget, a hard-capped
team/feature budget, guardrails on (input PII redact, injection flag, output PII flag), a priced model
(bench/gateway_load_full.py `switch_on`), recording on. Per rate, each round runs every contender once (open
loop from its own process, bench.gateway_load's generator); a turn's figures: the client's p50 / p99, added p50 /
p99 = the turn's minus the same round's direct turn, the server process tree's CPU per request handled, errors,
and the load average. `--contender '{"name": ..., "tree": "this"|"base"|DIR, "workers": 1, "args": [...], "path":
[...], "floor": false, "server": "granian"}'` adds a server with other options, another checkout served as this
tree is (DIR), granian as served before ADR 0134 (`"server": "granian"`),
more import paths (a package tried before it is installed), the floor's app, or another `"app"` (repeatable). Beside the figures above,
each gateway turn reports the gateway's own overhead from its usage events (`ledger_overhead`: latency − upstream
time as recorded, whole ms), and every turn the load generator's and the stand-in's CPU per request (they share the
two cores with the gateway). `--profile NAME` records that contender with py-spy for one more
turn at the first rate (bench.gateway_profile's summary). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import BASE_DIR, setup_django, stop_process
from bench.gateway_load import BODY, cpu_seconds, load, pct, settle

# How main served the gateway before `gateway_command` (ADR 0125); the loop and interface are the tree's own.
BASE_ARGS = ["--interface", "asgi", "--no-ws", "--log-level", "warning"]
APP = "portal.gateway_asgi:application"
# A contender's `"server": "granian"`: granian as served before ADR 0134 (uvloop; the ASGI interface, the RSGI
# adapter being gone), so the two servers can be measured side by side.
GRANIAN = ["-m", "granian", *BASE_ARGS, "--loop", "uvloop", "--host", "127.0.0.1"]


def base_args(tree: Path) -> list[str]:
    """BASE_ARGS with the loop and interface that tree's launcher serves on: uvloop since ADR 0131, asyncio's own
    before; RSGI since ADR 0132."""
    launcher = (tree / "portal" / "launcher.py").read_text()
    args = [*BASE_ARGS, "--loop", "uvloop" if '"uvloop"' in launcher else "asyncio"]
    if '"rsgi"' in launcher:
        args[args.index("--interface") + 1] = "rsgi"
    return args


def tree_command(tree: Path, port: int, workers: int) -> list[str]:
    """How `tree` serves its gateway (without the app, which goes last): its launcher's `gateway_command`, asked
    in a process of its own (each tree's portal package on its own path); granian before that function."""
    if "def gateway_command" not in (tree / "portal" / "launcher.py").read_text():
        return [sys.executable, "-m", "granian", *base_args(tree), "--port", str(port), "--workers", str(workers)]
    asked = subprocess.run(
        [sys.executable, "-c", "import json, sys; from portal.launcher import gateway_command; "
                               f"print(json.dumps(gateway_command(sys.executable, '127.0.0.1', '{port}', {workers})))"],
        cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True, check=True)
    command = json.loads(asked.stdout.strip().splitlines()[-1])
    command.remove(APP)
    return command


def this_command(port: int, workers: int) -> list[str]:
    """This tree's gateway command as `make run` runs it, without the app (it goes last)."""
    # why: after setup_django (the portal package configures Celery); the launcher holds the gateway's options
    from portal.launcher import gateway_command

    command = gateway_command(sys.executable, "127.0.0.1", str(port), workers)
    command.remove(APP)
    return command


def server(tree: Path, command: list[str], env: dict, probe: str, path: tuple[str, ...] = ()) -> subprocess.Popen:
    from bench.gateway_path import wait  # why: imports httpx; only the orchestrator needs it

    # its own session: a worker that outlives its master's SIGTERM is killed with the group, not orphaned
    process = subprocess.Popen(command, cwd=tree, env={**env, "PYTHONPATH": os.pathsep.join([str(tree), *path])},
                               start_new_session=True)
    wait(probe, ok=(200, 401, 404, 405), proc=process)
    return process


def turn(url: str, body: dict, auth: str, process: subprocess.Popen, rate: float, seconds: float,
         stats_url: str, standin: subprocess.Popen, ledger: bool = False) -> dict:
    settle(url, body, auth, stats_url)
    before, standin_before = cpu_seconds(process.pid), cpu_seconds(standin.pid)
    started = time.time()
    run = load(url, rate, seconds, body, auth)
    settle(url, body, auth, stats_url)  # what the turn queued is worked off (and counted) too
    handled = (run.get("sent") or 0) + (run.get("warm_up") or 0) + 2
    figures = {"cpu_ms_per_request": round((cpu_seconds(process.pid) - before) * 1000 / handled, 3),
               "p50_ms": run.get("p50_ms"), "p99_ms": run.get("p99_ms"), "ok": run.get("ok"), "sent": run.get("sent"),
               "errors": run.get("errors"), "load_average": round(os.getloadavg()[0], 2),
               "generator_cpu_ms_per_request": run.get("generator_cpu_ms_per_request")}
    if process is not standin:  # the upstream's share of the same two cores while this contender ran
        figures["standin_cpu_ms_per_request"] = round((cpu_seconds(standin.pid) - standin_before) * 1000 / handled, 3)
    if ledger:
        figures.update(ledger_overhead(started, time.time()))
    return figures


def ledger_overhead(since: float, until: float) -> dict:
    """The gateway's own figure for the turn's answered calls, from their usage events: latency_ms − upstream_ms
    (whole milliseconds, as recorded; the call path's span from after the budget reservation to the record, so
    the body read, the key's round trip and the answer's send are outside it). Waits for the recorder first."""
    from datetime import UTC, datetime  # why: only the orchestrator reads the ledger

    from apps.core import redis as portal_redis
    from apps.costs.models import UsageEvent
    from apps.gateway import recording

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and portal_redis.client().xlen(recording.stream_key()):
        time.sleep(0.2)
    rows = list(UsageEvent.objects.filter(
        source="gateway", status="ok", upstream_ms__isnull=False,
        occurred_at__gte=datetime.fromtimestamp(since, UTC), occurred_at__lte=datetime.fromtimestamp(until, UTC),
    ).values_list("latency_ms", "upstream_ms"))
    overhead = [total - upstream for total, upstream in rows]
    return {"ledger_rows": len(rows), "ledger_overhead_p50_ms": pct(overhead, 0.5),
            "ledger_overhead_p99_ms": pct(overhead, 0.99), "ledger_latency_p50_ms": pct([r[0] for r in rows], 0.5),
            "ledger_upstream_p50_ms": pct([r[1] for r in rows], 0.5)}


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="100,500")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--baseline", default="", help="a checkout of the tree to compare with")
    parser.add_argument("--workers", default="1", help="server workers of this tree (and the baseline): 1,2")
    parser.add_argument("--plain", action="store_true", help="a key with request and token limits only")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--contender", action="append", default=[], help="JSON: name, tree, workers, args")
    parser.add_argument("--profile", default="", help="a contender's name: py-spy it for one more turn")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--raw", default="", help="with --profile: keep py-spy's collapsed stacks in this file")
    args = parser.parse_args()
    setup_django()
    from django.conf import settings  # why: after setup_django()

    from apps.core import redis as portal_redis
    from apps.gateway import recording
    from apps.gateway.services import gateway_key_create
    from bench.gateway_load_full import CAP, switch_on
    from bench.gateway_path import standin_catalog, wait
    from bench.gateway_profile import profiled_load
    from bench.gateway_servers import free_port

    env = {**os.environ, "REDIS_URL": settings.REDIS_URL, "DATABASE_URL": os.environ["DATABASE_URL"]}
    baseline = Path(args.baseline).resolve() if args.baseline else None
    procs: dict[str, subprocess.Popen] = {}
    try:
        standin_port = free_port()
        procs["standin"] = subprocess.Popen(
            [sys.executable, "manage.py", "llm_standin", "--port", str(standin_port), "--latency-ms",
             str(args.latency_ms)], cwd=BASE_DIR, env={**env, "PYTHONPATH": str(BASE_DIR)}, stdout=subprocess.DEVNULL)
        stats_url = f"http://127.0.0.1:{standin_port}/standin/stats"
        wait(stats_url, ok=(200,), proc=procs["standin"])
        team = standin_catalog(standin_port)
        options = {} if args.plain else {"dollars_per_day": CAP}
        created = gateway_key_create(team=team, name="bench-fast", feature="bench", requests_per_minute=10_000_000,
                                     tokens_per_minute=2_000_000_000, **options)
        if not args.plain:
            switch_on(team=team, key=created.key)
        secret = created.secret
        portal_redis.client().delete(recording.stream_key())
        procs["recorder"] = subprocess.Popen([sys.executable, "manage.py", "gateway_recorder"], cwd=BASE_DIR,
                                             env={**env, "PYTHONPATH": str(BASE_DIR)})
        env["BENCH_UPSTREAM_URL"] = f"http://127.0.0.1:{standin_port}/v1/chat/completions"

        # name -> (url, body, auth, process)
        targets: dict[str, tuple[str, dict, str, subprocess.Popen]] = {
            "direct": (env["BENCH_UPSTREAM_URL"], {**BODY, "model": "standin-chat"}, "", procs["standin"])}

        def add(name: str, tree: Path, command: list[str], app_is_gateway: bool = True, path=()) -> None:
            port = int(command[command.index("--port") + 1])
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            probe = f"http://127.0.0.1:{port}/v1/models" if app_is_gateway else url
            procs[name] = server(tree, command, env, probe, tuple(path))
            targets[name] = (url, BODY, secret if app_is_gateway else "", procs[name])

        if not args.no_floor:
            add("floor", BASE_DIR, [*this_command(free_port(), 1), "bench.gateway_noop:forward_app"], False)
        for workers in (int(w) for w in args.workers.split(",")):
            add(f"this_{workers}w", BASE_DIR, [*this_command(free_port(), workers), APP])
            if baseline is not None:
                add(f"base_{workers}w", baseline, [*tree_command(baseline, free_port(), workers), APP])
        for spec in (json.loads(c) for c in args.contender):
            tree = {"base": baseline, "this": BASE_DIR, None: BASE_DIR}.get(spec.get("tree")) or Path(spec["tree"])
            workers, port = spec.get("workers", 1), free_port()
            if spec.get("server") == "granian":
                command = [sys.executable, *GRANIAN, "--port", str(port), "--workers", str(workers)]
            elif spec.get("tree") == "base":
                command = tree_command(baseline, port, workers)
            else:
                command = this_command(port, workers)
            app = spec.get("app") or ("bench.gateway_noop:forward_app" if spec.get("floor") else APP)
            add(spec["name"], tree, [*command, *spec.get("args", []), app], not spec.get("floor"), spec.get("path", ()))

        first_rate = float(args.rates.split(",")[0])
        for url, body, auth, process in targets.values():  # warm-up, not counted
            turn(url, body, auth, process, first_rate, 4, stats_url, procs["standin"])
        result: dict = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                        "load_average_at_start": os.getloadavg(), "upstream_latency_ms": args.latency_ms,
                        "seconds": args.seconds, "rounds": args.rounds, "key": "plain" if args.plain else "full",
                        "baseline": str(baseline) if baseline else None, "rates": {}}
        for rate in (float(r) for r in args.rates.split(",")):
            turns: dict[str, list[dict]] = {name: [] for name in targets}
            for _round in range(args.rounds):
                direct = None
                for name, (url, body, auth, process) in targets.items():
                    figures = turn(url, body, auth, process, rate, args.seconds, stats_url, procs["standin"],
                                   ledger=bool(auth) and name != "direct")
                    if name == "direct":
                        direct = figures
                    elif direct is not None:
                        for q in ("p50_ms", "p99_ms"):
                            mine, theirs = figures[q], direct[q]
                            figures[f"added_{q}"] = None if None in (mine, theirs) else round(mine - theirs, 3)
                    turns[name].append(figures)
            summary = {name: {"cpu_ms_per_request": _median([t["cpu_ms_per_request"] for t in runs]),
                              "added_p50_ms": _median([t.get("added_p50_ms") for t in runs]),
                              "added_p99_ms": _median([t.get("added_p99_ms") for t in runs]),
                              "p50_ms": _median([t["p50_ms"] for t in runs]),
                              "p99_ms": _median([t["p99_ms"] for t in runs]),
                              "server_overhead_p50_ms": _median([t.get("ledger_overhead_p50_ms") for t in runs]),
                              "server_overhead_p99_ms": _median([t.get("ledger_overhead_p99_ms") for t in runs]),
                              "generator_cpu_ms_per_request": _median([t.get("generator_cpu_ms_per_request")
                                                                       for t in runs]),
                              "standin_cpu_ms_per_request": _median([t.get("standin_cpu_ms_per_request")
                                                                     for t in runs]),
                              "answered": sum(t["ok"] or 0 for t in runs), "sent": sum(t["sent"] or 0 for t in runs),
                              "load_average": [t["load_average"] for t in runs]}
                       for name, runs in turns.items()}
            result["rates"][str(int(rate))] = {"median": summary, "turns": turns}
        if args.profile:
            url, body, auth, process = targets[args.profile]
            result["profile"] = {"contender": args.profile, "rate": first_rate,
                                 **profiled_load(process.pid, url, first_rate, args.seconds, body, auth, args.top,
                                                 args.raw)}
        result["load_average_at_end"] = os.getloadavg()
        print(json.dumps(result, indent=1))
    finally:
        for process in procs.values():
            stop_process(process, 10, group=True)
        portal_redis.client().delete(recording.stream_key())


if __name__ == "__main__":
    main()
