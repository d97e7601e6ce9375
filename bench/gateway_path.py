"""What the whole gateway adds: the same chat request to the stand-in upstream directly and through the gateway
(key check, limits on, admission, recording to the Redis stream), one gateway process served as `make run` serves it.

    .venv/bin/python -m bench.gateway_path [--requests 1000] [--rates 100,300]

Sequential on one kept-alive connection: p50 / p99 of each, and the difference (added latency). Then paced runs
at each rate (requests/s, open loop over a few client threads): p50 / p99 through the gateway. Uses the
`portal_bench` database (bench/common.py) and the stand-in as a separate process. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from bench.common import BASE_DIR, setup_django
from bench.gateway_servers import free_port, pct

BODY = {"model": "bench-chat", "messages": [{"role": "user", "content": "How long do refunds take?"}],
        "max_tokens": 16}


def wait(url: str, ok=(200, 401), proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    """Until `url` answers one of `ok` (raises if `proc`, the server, exits first or time runs out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited ({proc.returncode})")
        try:
            if httpx.get(url, timeout=1).status_code in ok:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def standin_chat_model(name: str, standin_port: int) -> None:
    """A catalog chat model `name` (and its provider `<name>-standin`) answered by the stand-in on `standin_port`."""
    from apps.llm.models import Model, ModelKind, Provider, ProviderKind
    from apps.llm.services import model_create, provider_create

    Model.objects.filter(name=name).delete()
    Provider.objects.filter(name=f"{name}-standin").delete()
    provider = provider_create(name=f"{name}-standin", kind=ProviderKind.OPENAI_COMPATIBLE,
                               base_url=f"http://127.0.0.1:{standin_port}/v1", max_retries=0)
    model_create(provider=provider, name=name, remote_name="standin-chat", kind=ModelKind.CHAT,
                 context_window=8192, max_output_tokens=1024)


def gateway_process(port: int, env: dict) -> subprocess.Popen:
    """One gateway process (as `make run` serves it), up and answering."""
    from portal.launcher import gateway_command  # why: after setup (the portal package configures Celery)

    process = subprocess.Popen(gateway_command(sys.executable, "127.0.0.1", str(port), 1), cwd=BASE_DIR, env=env)
    wait(f"http://127.0.0.1:{port}/v1/models")
    return process


def standin_process(port: int, env: dict) -> subprocess.Popen:
    """The stand-in upstream as its own process on `port`, up and answering (stopped again if it does not come up)."""
    process = subprocess.Popen([sys.executable, "manage.py", "llm_standin", "--port", str(port)], cwd=BASE_DIR,
                               env=env)
    try:
        wait(f"http://127.0.0.1:{port}/standin/stats", ok=(200,), proc=process)
    except BaseException:
        stop(process)
        raise
    return process


def stop(*processes: subprocess.Popen | None) -> None:
    for process in processes:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)


def standin_catalog(standin_port: int):
    """The benches' model `bench-chat` on the stand-in at `standin_port` (an earlier run's replaced), and their
    team."""
    from apps.accounts.models import Team  # why: the ORM exists only after setup_django()

    standin_chat_model("bench-chat", standin_port)
    team, _ = Team.objects.get_or_create(slug="bench-gateway", defaults={"name": "Bench gateway"})
    return team


def sequential(url: str, body: dict, headers: dict, n: int) -> list[float]:
    times = []
    with httpx.Client(headers=headers) as client:
        for _ in range(30):
            client.post(url, json=body).raise_for_status()
        for _ in range(n):
            started = time.perf_counter()
            client.post(url, json=body).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return times


def paced(url: str, body: dict, headers: dict, rate: int, seconds: float = 5.0) -> dict:
    times, errors = [], 0
    clients = [httpx.Client(headers=headers) for _ in range(16)]

    def one(i: int) -> None:
        nonlocal errors
        started = time.perf_counter()
        try:
            clients[i % len(clients)].post(url, json=body).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
        except httpx.HTTPError:
            errors += 1

    total = int(rate * seconds)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=16) as pool:
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, i)
    achieved = total / (time.perf_counter() - start)
    for c in clients:
        c.close()
    return {"target_rps": rate, "achieved_rps": round(achieved), "p50_ms": pct(times, 0.5),
            "p99_ms": pct(times, 0.99), "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rates", default="100,300")
    args = parser.parse_args()
    setup_django()
    from apps.core import redis as portal_redis
    from apps.gateway import recording
    from apps.gateway.services import gateway_key_create

    standin_port, gateway_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(BASE_DIR)}
    standin = standin_process(standin_port, env)
    gateway = None
    try:
        team = standin_catalog(standin_port)
        secret = gateway_key_create(team=team, name="bench", feature="bench", requests_per_minute=1_000_000,
                                    tokens_per_minute=1_000_000_000).secret
        gateway = gateway_process(gateway_port, env)
        auth = {"Authorization": f"Bearer {secret}"}
        direct_body = {**BODY, "model": "standin-chat"}
        direct = sequential(f"http://127.0.0.1:{standin_port}/v1/chat/completions", direct_body, {}, args.requests)
        through = sequential(f"http://127.0.0.1:{gateway_port}/v1/chat/completions", BODY, auth, args.requests)
        result = {
            "load_average": os.getloadavg(), "requests": args.requests,
            "direct": {"p50_ms": pct(direct, 0.5), "p99_ms": pct(direct, 0.99)},
            "gateway": {"p50_ms": pct(through, 0.5), "p99_ms": pct(through, 0.99)},
            "added": {"p50_ms": round(pct(through, 0.5) - pct(direct, 0.5), 3),
                      "p99_ms": round(pct(through, 0.99) - pct(direct, 0.99), 3)},
            "paced": [paced(f"http://127.0.0.1:{gateway_port}/v1/chat/completions", BODY, auth, int(rate))
                      for rate in args.rates.split(",")],
        }
        print(json.dumps(result, indent=1))
    finally:
        stop(gateway, standin)
        portal_redis.client().delete(recording.stream_key())


if __name__ == "__main__":
    main()
