"""The gateway's response cache (ADR 0074): latency of a hit against a miss, plain and streamed.

    .venv/bin/python -m bench.gateway_cache [--requests 300] [--upstream-ms 20]

One gateway process (as `make run` serves it), the stand-in upstream as its own process answering after `--upstream-ms`.
For plain and stream requests, sequentially on one kept-alive connection (a stream is timed to its `[DONE]`):

    off   a key without the cache (what every request paid before it)
    miss  a caching key, each request new: the lookup (GET) + the call + the store (SET)
    hit   a caching key, the same request again: answered from Redis, no upstream call

p50 / p99 in ms of each, and the upstream calls the stand-in counted (hits must add none). Uses the
`portal_bench` database (bench/common.py). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import httpx

from bench.common import BASE_DIR, setup_django
from bench.gateway_path import gateway_process, standin_chat_model, stop, wait
from bench.gateway_servers import free_port, pct

QUESTION = "How long do refunds take? Tell me in a few words please."


def body(n: int | None, stream: bool) -> dict:
    text = QUESTION if n is None else f"{QUESTION} (variant {n})"
    return {"model": "bench-cache-chat", "messages": [{"role": "user", "content": text}], "temperature": 0,
            "max_tokens": 32, "stream": stream}


def timed(client: httpx.Client, url: str, payload: dict) -> tuple[float, str]:
    started = time.perf_counter()
    if payload["stream"]:
        with client.stream("POST", url, json=payload) as answer:
            answer.raise_for_status()
            text = "".join(answer.iter_text())
            if not text.rstrip().endswith("data: [DONE]"):
                raise RuntimeError("a stream ended without [DONE]")
            cache = answer.headers["x-portal-cache"]
    else:
        answer = client.post(url, json=payload)
        answer.raise_for_status()
        cache = answer.headers["x-portal-cache"]
    return (time.perf_counter() - started) * 1000, cache


def run_mode(url: str, secret: str, mode: str, stream: bool, n: int, offset: int) -> dict:
    """`n` timed requests (after 20 warm-ups) of one mode; every answer's X-Portal-Cache is checked."""
    expected = "hit" if mode == "hit" else "miss"
    times = []
    with httpx.Client(headers={"Authorization": f"Bearer {secret}"}, timeout=30) as client:
        if mode == "hit":
            timed(client, url, body(None, stream))  # the one miss that fills the entry
        for i in range(20 + n):
            payload = body(None if mode == "hit" else offset + i, stream)
            elapsed, cache = timed(client, url, payload)
            if cache != expected:
                raise RuntimeError(f"{mode}: expected X-Portal-Cache {expected}, got {cache}")
            if i >= 20:
                times.append(elapsed)
    return {"p50_ms": pct(times, 0.5), "p99_ms": pct(times, 0.99)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--upstream-ms", type=float, default=20.0)
    args = parser.parse_args()
    setup_django()
    from apps.accounts.models import Team
    from apps.core import redis as portal_redis
    from apps.gateway import recording
    from apps.gateway.services import gateway_key_create

    standin_port, gateway_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(BASE_DIR)}
    standin = subprocess.Popen([sys.executable, "manage.py", "llm_standin", "--port", str(standin_port),
                                "--latency-ms", str(args.upstream_ms)], cwd=BASE_DIR, env=env)
    gateway = None
    redis = portal_redis.client()
    try:
        wait(f"http://127.0.0.1:{standin_port}/standin/stats", ok=(200,))
        standin_chat_model("bench-cache-chat", standin_port)
        team, _ = Team.objects.get_or_create(slug="bench-gateway-cache", defaults={"name": "Bench gateway cache"})
        for name in redis.scan_iter(portal_redis.key("gateway", "cache", team.pk, "*")):
            redis.delete(name)
        keys = {"off": gateway_key_create(team=team, name="bench-off", feature="bench").secret,
                "on": gateway_key_create(team=team, name="bench-on", feature="bench", cache_enabled=True).secret}
        gateway = gateway_process(gateway_port, env)
        url = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
        stats = f"http://127.0.0.1:{standin_port}/standin/stats"
        result = {"load_average": os.getloadavg(), "requests": args.requests, "upstream_ms": args.upstream_ms}
        offset = int(time.time() * 1000)  # new request texts on every run: a miss is a miss
        for kind, stream in (("plain", False), ("stream", True)):
            figures = {}
            for mode in ("off", "miss", "hit"):
                before = httpx.get(stats).json()["calls"]
                figures[mode] = run_mode(url, keys["off" if mode == "off" else "on"], mode, stream, args.requests,
                                         offset)
                figures[mode]["upstream_calls"] = httpx.get(stats).json()["calls"] - before
                offset += args.requests + 100
            figures["hit_vs_miss_p50"] = round(figures["hit"]["p50_ms"] / figures["miss"]["p50_ms"], 3)
            result[kind] = figures
        print(json.dumps(result, indent=1))
    finally:
        stop(gateway, standin)
        redis.delete(recording.stream_key())


if __name__ == "__main__":
    main()
