"""Issue #14's figures: what the portal gateway adds at a fixed arrival rate, side by side with LiteLLM's proxy.

    .venv/bin/python -m bench.gateway_load [--seconds 8] [--rates 100,500] [--ramp 100,200,300,500,700,1000]
        [--warmup-seconds 5] [--latency-ms 20] [--workers 1] [--streams 2000] [--no-litellm]
        [--key-options JSON] [--setup MOD:FN]

One run, same machine, same stand-in upstream (`manage.py llm_standin --latency-ms L`, a fixed upstream time):
  - the stand-in directly (the baseline), the portal gateway (as `make run` serves it, a key with request and token limits,
    recording on: XADD per call and `manage.py gateway_recorder` writing the ledger) and LiteLLM's proxy
    (its own venv `.portal/bench-litellm`, made from bench/litellm-requirements.txt on first use; master key:
    its virtual keys need Prisma, whose engines it downloads at start, which cannot happen offline);
  - open-loop load from a separate process (`--generate`): request i is sent at t0 + i/rate whatever came
    back, over raw keep-alive HTTP/1.1 connections (a lean client, so the generator adds little);
  - added latency = p50 (p99) through a proxy minus p50 (p99) of the stand-in directly at the same rate;
  - a short ramp: the highest rate at which the added p99 stays under 10 ms;
  - RSS of each server's process tree after the load;
  - streamed requests through the gateway with the recorder running: the share recorded on the ledger with
    tokens > 0.
Budgets, guardrails, cache: `--key-options '{"cache_enabled": true, ...}'` passes fields to the key, and
`--setup module:function` calls function(team=..., key=...) before the load, so a tree that has them can
switch them on. Uses the `portal_bench` database (bench/common.py). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import BASE_DIR, stop_process

LITELLM_VENV = BASE_DIR / ".portal" / "bench-litellm"
LITELLM_REQUIREMENTS = BASE_DIR / "bench" / "litellm-requirements.txt"
MASTER_KEY = "sk-bench-master-key"
BODY = {"model": "bench-chat", "messages": [{"role": "user", "content": "How long do refunds take?"}],
        "max_tokens": 16}
P99_GOAL_MS = 10.0
REQUEST_TIMEOUT_S = 10.0


# -- the load generator (runs in its own process) ------------------------------------------------------------
class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked = None, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if length is not None:
        await reader.readexactly(length)
    elif chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def _generate(url: str, rate: float, seconds: float, body: bytes, auth: str) -> dict:
    host_port = url.split("://", 1)[1].split("/", 1)
    host, port = host_port[0].split(":")
    path = "/" + host_port[1]
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
               + (f"Authorization: Bearer {auth}\r\n" if auth else "")
               + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    idle: list[_Conn] = []
    times: list[float] = []
    lags: list[float] = []
    errors: dict[str, int] = {}

    async def one(planned: float) -> None:
        started = time.perf_counter()
        lags.append((started - planned) * 1000)
        conn = idle.pop() if idle else None
        try:
            if conn is None:
                conn = _Conn(*await asyncio.wait_for(asyncio.open_connection(host, int(port)), REQUEST_TIMEOUT_S))
            conn.writer.write(request)
            status = await asyncio.wait_for(_read_response(conn.reader), REQUEST_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - counted, the run goes on
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            if conn is not None:
                conn.writer.close()
            return
        elapsed = (time.perf_counter() - started) * 1000
        idle.append(conn)
        if status == 200:
            times.append(elapsed)
        else:
            errors[str(status)] = errors.get(str(status), 0) + 1

    # warm-up: a few connections and code paths, not measured (bounded: a stuck server must not stall the run)
    warm_until = time.perf_counter() + 10
    warmed = 0
    while warmed < 20 and time.perf_counter() < warm_until:
        await one(time.perf_counter())
        warmed += 1
    times.clear(), lags.clear(), errors.clear()
    cpu_started = time.process_time()  # the generator's own CPU over the measured requests (they share the cores)
    total = int(rate * seconds)
    tasks = []
    start = time.perf_counter() + 0.05
    for i in range(total):
        planned = start + i / rate
        delay = planned - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(planned)))
    sent_for = time.perf_counter() - start
    _done, late = await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S + 5)
    for task in late:  # still unanswered: counted as timeouts
        task.cancel()
        errors["TimeoutError"] = errors.get("TimeoutError", 0) + 1
    cpu_ms = (time.process_time() - cpu_started) * 1000
    for conn in idle:
        conn.writer.close()
    return {"rate": rate, "sent": total, "warm_up": warmed, "achieved_rps": round(total / sent_for, 1), "ok": len(times),
            "errors": errors, "p50_ms": pct(times, 0.5), "p99_ms": pct(times, 0.99),
            "send_lag_p99_ms": pct(lags, 0.99), "generator_cpu_ms_per_request": round(cpu_ms / total, 3)}


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


def load(url: str, rate: float, seconds: float, body: dict, auth: str = "") -> dict:
    """One open-loop run from a separate process (so the generator does not share the orchestrator's loop)."""
    try:
        out = subprocess.run([sys.executable, "-m", "bench.gateway_load", "--generate", url, "--rate", str(rate),
                              "--seconds", str(seconds), "--body", json.dumps(body), "--auth", auth],
                             cwd=BASE_DIR, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
        return json.loads(out)
    except (subprocess.SubprocessError, ValueError) as exc:  # the run goes on; the row says what happened
        return {"rate": rate, "sent": None, "achieved_rps": None, "ok": 0, "errors": {"generator": str(exc)[:200]},
                "p50_ms": None, "p99_ms": None, "send_lag_p99_ms": None}


# -- servers ------------------------------------------------------------------------------------------------
def _tree(pid: int) -> list[int]:
    """A process and its descendants (from /proc: the server's workers, LiteLLM's uvicorn)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, ()))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process tree so far (/proc, clock ticks), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in _tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def settle(url: str, body: dict, auth: str, standin_stats: str) -> None:
    """Before a run: the target has worked off what an earlier run left queued (a probe answers and the
    stand-in has nothing in flight), so runs do not inherit each other's backlog."""
    import httpx  # why: the generator processes import this module and stay light

    headers = {"Authorization": f"Bearer {auth}"} if auth else {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.post(url, json=body, headers=headers, timeout=30)
            if httpx.get(standin_stats, timeout=5).json()["in_flight"] == 0:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)


def rss_mb(pid: int) -> float:
    """Resident memory of a process tree, in MB."""
    total = 0
    for member in _tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


def litellm_python() -> Path:
    """The LiteLLM venv's python, made on first use from bench/litellm-requirements.txt (exact pin)."""
    python = LITELLM_VENV / "bin" / "python"
    stamp = LITELLM_VENV / ".requirements"
    wanted = LITELLM_REQUIREMENTS.read_text()
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(LITELLM_REQUIREMENTS)], check=True)
        stamp.write_text(wanted)
    return python


def start_litellm(port: int, standin_port: int, workdir: Path) -> subprocess.Popen:
    config = workdir / "litellm-config.yaml"
    # As close to ours as it runs offline: one model name routed to the same stand-in, no retries, no
    # callbacks; the master key (virtual keys, their limits and spend logs need its Prisma database).
    config.write_text(json.dumps({
        "model_list": [{"model_name": "bench-chat", "litellm_params": {
            "model": "openai/standin-chat", "api_base": f"http://127.0.0.1:{standin_port}/v1",
            "api_key": "EMPTY"}}],
        "litellm_settings": {"num_retries": 0, "request_timeout": 30, "telemetry": False,
                             "drop_params": True},
        "general_settings": {"master_key": MASTER_KEY},
    }))
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False", "DISABLE_SCHEMA_UPDATE": "true",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True", "NO_DOCS": "True"}
    env.pop("DATABASE_URL", None)
    binary = LITELLM_VENV / "bin" / "litellm"
    return subprocess.Popen([str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                             "--num_workers", "1"], cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(workdir / "litellm.log", "w"), start_new_session=True)


# -- streamed usage ------------------------------------------------------------------------------------------
async def _streams(url: str, secret: str, count: int, concurrency: int) -> tuple[list[str], int]:
    import httpx  # why: the generator processes import this module and stay light

    ids: list[str] = []
    failed = 0
    body = {**BODY, "stream": True}
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {secret}"}, timeout=30,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one() -> None:
            nonlocal failed
            async with gate:
                try:
                    async with client.stream("POST", url, json=body) as response:
                        text = (await response.aread()).decode()
                    if response.status_code == 200 and text.rstrip().endswith("data: [DONE]"):
                        ids.append(response.headers["x-portal-request-id"])
                    else:
                        failed += 1
                except httpx.HTTPError:
                    failed += 1

        await asyncio.gather(*(one() for _ in range(count)))
    return ids, failed


def streamed_usage(gateway_url: str, secret: str, count: int) -> dict:
    # why: the ORM exists only after setup_django() (main)
    from apps.core import redis as portal_redis
    from apps.costs.models import UsageEvent
    from apps.gateway import recording

    started = time.perf_counter()
    ids, failed = asyncio.run(_streams(f"{gateway_url}/v1/chat/completions", secret, count, 20))
    seconds = time.perf_counter() - started
    deadline = time.monotonic() + 60
    client = portal_redis.client()
    while time.monotonic() < deadline and client.xlen(recording.stream_key()):
        time.sleep(0.2)  # the recorder process drains the stream
    rows = 0
    with_tokens = 0
    for start in range(0, len(ids), 1000):
        batch = ids[start:start + 1000]
        found = UsageEvent.objects.filter(request_id__in=batch)
        rows += found.count()
        with_tokens += found.filter(input_tokens__gt=0, output_tokens__gt=0).count()
    return {"streams": count, "answered_complete": len(ids), "failed": failed, "seconds": round(seconds, 1),
            "ledger_rows": rows, "rows_with_tokens": with_tokens,
            "share_recorded_with_tokens": round(with_tokens / len(ids), 5) if ids else None}


# -- the run -------------------------------------------------------------------------------------------------
def added(through: dict, direct: dict) -> dict:
    def minus(key):
        if through[key] is None or direct[key] is None:
            return None
        return round(through[key] - direct[key], 3)

    return {"p50_ms": minus("p50_ms"), "p99_ms": minus("p99_ms")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--generate")  # internal: run the load generator against this URL, print JSON
    parser.add_argument("--rate", type=float)
    parser.add_argument("--body")
    parser.add_argument("--auth", default="")
    parser.add_argument("--seconds", type=float, default=8.0, help="per rate (100 and 500 req/s)")
    parser.add_argument("--rates", default="100,500")
    parser.add_argument("--ramp", default="100,200,300,500,700,1000", help="the ramp's rates, 3 s each")
    parser.add_argument("--ramp-seconds", type=float, default=3.0)
    parser.add_argument("--warmup-seconds", type=float, default=5.0, help="per server, before measuring")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="the stand-in's fixed upstream time")
    parser.add_argument("--workers", type=int, default=1, help="server workers of the gateway")
    parser.add_argument("--streams", type=int, default=2000, help="streamed requests for the usage check")
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--key-options", default="{}", help="JSON: more fields for the bench key")
    parser.add_argument("--setup", default="", help="module:function(team=, key=) run before the load")
    args = parser.parse_args()
    if args.generate:
        print(json.dumps(asyncio.run(_generate(args.generate, args.rate, args.seconds, args.body.encode(),
                                               args.auth))))
        return

    # why: the generator processes (`--generate`) import this module and stay light: no Django, no httpx
    from bench.common import setup_django
    from bench.gateway_path import standin_catalog, wait
    from bench.gateway_servers import free_port

    setup_django()
    # why: the ORM and the apps exist only after setup_django()
    from apps.core import redis as portal_redis
    from apps.gateway import recording
    from apps.gateway.services import gateway_key_create

    workdir = BASE_DIR / ".portal" / "bench-gateway-load"
    workdir.mkdir(parents=True, exist_ok=True)
    litellm_note = None
    if not args.no_litellm:
        try:
            litellm_python()
        except (subprocess.CalledProcessError, OSError) as exc:
            litellm_note = f"LiteLLM could not be installed: {exc}"
    standin_port, gateway_port, litellm_port = free_port(), free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(BASE_DIR)}
    procs: dict[str, subprocess.Popen] = {}
    try:
        procs["standin"] = subprocess.Popen(
            [sys.executable, "manage.py", "llm_standin", "--port", str(standin_port), "--latency-ms",
             str(args.latency_ms)], cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL)
        wait(f"http://127.0.0.1:{standin_port}/standin/stats", ok=(200,), proc=procs["standin"])
        team = standin_catalog(standin_port)
        created = gateway_key_create(team=team, name="bench-load", feature="bench",
                                     requests_per_minute=10_000_000, tokens_per_minute=2_000_000_000,
                                     **json.loads(args.key_options))
        if args.setup:
            module, _, function = args.setup.partition(":")
            getattr(importlib.import_module(module), function)(team=team, key=created.key)
        secret = created.secret
        portal_redis.client().delete(recording.stream_key())
        procs["recorder"] = subprocess.Popen([sys.executable, "manage.py", "gateway_recorder"], cwd=BASE_DIR,
                                             env=env)
        from portal.launcher import gateway_command  # why: after setup (the portal package configures Celery)

        procs["gateway"] = subprocess.Popen(  # served as `make run` serves it
            gateway_command(sys.executable, "127.0.0.1", str(gateway_port), args.workers), cwd=BASE_DIR, env=env)
        wait(f"http://127.0.0.1:{gateway_port}/v1/models", proc=procs["gateway"])
        if not args.no_litellm and litellm_note is None:
            procs["litellm"] = start_litellm(litellm_port, standin_port, workdir)
            try:
                wait(f"http://127.0.0.1:{litellm_port}/health/liveliness", ok=(200,), proc=procs["litellm"],
                     timeout=180)
            except RuntimeError as exc:
                litellm_note = f"LiteLLM did not start: {exc} (see {workdir / 'litellm.log'})"
                stop_process(procs.pop("litellm"), 10, group=True)

        targets = {"direct": (f"http://127.0.0.1:{standin_port}/v1/chat/completions",
                              {**BODY, "model": "standin-chat"}, "", procs["standin"]),
                   "gateway": (f"http://127.0.0.1:{gateway_port}/v1/chat/completions", BODY, secret,
                               procs["gateway"])}
        if "litellm" in procs:
            targets["litellm"] = (f"http://127.0.0.1:{litellm_port}/v1/chat/completions", BODY, MASTER_KEY,
                                  procs["litellm"])
        stats_url = f"http://127.0.0.1:{standin_port}/standin/stats"

        def one_run(url: str, body: dict, auth: str, server: subprocess.Popen, rate: float,
                    seconds: float) -> dict:
            settle(url, body, auth, stats_url)
            cpu = cpu_seconds(server.pid)
            run = load(url, rate, seconds, body, auth)
            settle(url, body, auth, stats_url)  # what the run queued is worked off (and counted) too
            if run["sent"]:  # the server's own CPU per request it handled (less noisy than latency on a busy box)
                handled = run["sent"] + run["warm_up"] + 2  # and the two probes
                run["server_cpu_ms_per_request"] = round((cpu_seconds(server.pid) - cpu) * 1000 / handled, 3)
            return run

        def at(rate: float, seconds: float) -> dict:
            runs = {name: one_run(*target, rate, seconds) for name, target in targets.items()}
            for name in targets:
                if name != "direct":
                    runs[name]["added"] = added(runs[name], runs["direct"])
            runs["load_average"] = os.getloadavg()[0]
            return runs

        for target in targets.values():  # warm-up, not measured: first requests, caches, pools, JITs
            one_run(*target, float(args.rates.split(",")[0]), args.warmup_seconds)
        result: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                        "load_average_at_start": os.getloadavg(), "upstream_latency_ms": args.latency_ms,
                        "seconds_per_rate": args.seconds, "gateway_workers": args.workers,
                        "litellm": "not run" if args.no_litellm else litellm_note or "1.108.12, master key, no database",
                        "gateway_key_options": json.loads(args.key_options), "setup": args.setup or None,
                        "rates": {}, "ramp": {}, "highest_rate_p99_added_under_10ms": {}}
        for rate in args.rates.split(","):
            result["rates"][rate] = at(float(rate), args.seconds)
        result["rss_mb"] = {name: rss_mb(procs[name].pid) for name in ("gateway", "litellm", "standin")
                            if name in procs}
        result["processes"] = {name: len(_tree(procs[name].pid)) for name in ("gateway", "litellm")
                               if name in procs}
        still = {name for name in targets if name != "direct"}
        for rate in args.ramp.split(","):
            if not still:
                break
            runs = at(float(rate), args.ramp_seconds)
            result["ramp"][rate] = runs
            for name in list(still):
                p99 = runs[name]["added"]["p99_ms"]
                if p99 is not None and p99 < P99_GOAL_MS and not runs[name]["errors"]:
                    result["highest_rate_p99_added_under_10ms"][name] = float(rate)
                else:
                    still.discard(name)
        if args.streams:
            result["streamed_usage"] = streamed_usage(f"http://127.0.0.1:{gateway_port}", secret, args.streams)
        result["load_average_at_end"] = os.getloadavg()
        print(json.dumps(result, indent=1))
    finally:
        for name in ("litellm", "gateway", "recorder", "standin"):
            if name in procs:
                stop_process(procs[name], 10, group=(name == "litellm"))
        portal_redis.client().delete(recording.stream_key())


if __name__ == "__main__":
    main()
