"""What one Redis round trip costs the gateway's process in CPU: redis-py's asyncio client (as the gateway's pool
is made, and with `socket_timeout=None`) against a bare asyncio connection sending the same bytes.

    .venv/bin/python -m bench.redis_round_trip [--round-trips 5000]

Also `hot_pipeline()`, what the gateway sends with (ADR 0130). Shapes: a seven-command pipeline (the limits' GET, INCR, EXPIRE, INCR, EXPIRE, GET, GET) and a single GET, one
after the other on one connection. Figures: the client's CPU (`time.process_time`) and wall time per round trip, in
µs. Prints one JSON object. Redis: settings.REDIS_URL of the bench settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import parse_qs, urlparse

from bench.common import machine, now_utc, setup_django

KEYS = ("bench:rt:stamp", "bench:rt:a", "bench:rt:b", "bench:rt:c", "bench:rt:d")


def _pipeline(pipe) -> None:
    stamp, a, b, c, d = KEYS
    pipe.get(stamp)
    pipe.incr(a)
    pipe.expire(a, 120)
    pipe.incr(b)
    pipe.expire(b, 90_000)
    pipe.get(c)
    pipe.get(d)


async def _timed(n: int, one) -> dict:
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        await one()
    return {"cpu_us": round((time.process_time() - cpu) / n * 1e6, 1),
            "wall_us": round((time.perf_counter() - wall) / n * 1e6, 1)}


async def redis_py(n: int, socket_timeout: float | None) -> dict:
    import redis.asyncio
    from django.conf import settings

    from apps.core import redis as portal_redis

    pool = redis.asyncio.BlockingConnectionPool.from_url(
        settings.REDIS_URL, max_connections=portal_redis.ASYNC_MAX_CONNECTIONS,
        timeout=portal_redis.SOCKET_TIMEOUT_SECONDS, socket_timeout=socket_timeout,
        socket_connect_timeout=portal_redis.CONNECT_TIMEOUT_SECONDS)
    client = redis.asyncio.Redis(connection_pool=pool)

    async def pipeline():
        pipe = client.pipeline(transaction=False)
        _pipeline(pipe)
        await pipe.execute()

    async def get():
        await client.get(KEYS[0])

    await _timed(200, pipeline)  # warm
    figures = {"pipeline": await _timed(n, pipeline), "get": await _timed(n, get)}
    await client.aclose()
    return figures


async def bare(n: int) -> dict:
    """The floor: the same bytes written and the replies read line by line, no client library."""
    from django.conf import settings

    from apps.core.resp import encode

    url = urlparse(settings.REDIS_URL)
    if url.scheme == "unix":
        reader, writer = await asyncio.open_unix_connection(url.path)
        db = parse_qs(url.query).get("db", ["0"])[0]
    else:
        reader, writer = await asyncio.open_connection(url.hostname, url.port or 6379)
        db = url.path.strip("/") or "0"
    writer.write(encode(("SELECT", db)))
    await reader.readline()
    stamp, a, b, c, d = KEYS
    pipeline_bytes = encode(*(
        ("GET", stamp), ("INCR", a), ("EXPIRE", a, 120), ("INCR", b), ("EXPIRE", b, 90_000), ("GET", c), ("GET", d)))
    get_bytes = encode(("GET", stamp))

    async def replies(count: int) -> None:
        for _ in range(count):
            line = await reader.readline()
            if line[:1] == b"$" and line[1:3] != b"-1":
                await reader.readline()

    async def pipeline():
        writer.write(pipeline_bytes)
        await replies(7)

    async def get():
        writer.write(get_bytes)
        await replies(1)

    await _timed(200, pipeline)
    figures = {"pipeline": await _timed(n, pipeline), "get": await _timed(n, get)}
    writer.close()
    return figures


async def hot(n: int) -> dict:
    """What the gateway's hot path uses since ADR 0130: `hot_pipeline()` on the loop's pipelined connection."""
    from apps.core import redis as portal_redis

    async def pipeline():
        pipe = portal_redis.hot_pipeline()
        _pipeline(pipe)
        await pipe.execute()

    async def get():
        await portal_redis.hot_pipeline().get(KEYS[0]).execute()

    await _timed(200, pipeline)
    figures = {"pipeline": await _timed(n, pipeline), "get": await _timed(n, get)}
    await portal_redis.close_loop_clients()
    return figures


async def run(n: int) -> dict:
    from apps.core import redis as portal_redis

    return {"redis-py (the gateway's pool)": await redis_py(n, portal_redis.SOCKET_TIMEOUT_SECONDS),
            "redis-py, socket_timeout=None": await redis_py(n, None),
            "hot_pipeline (apps/core/resp.py)": await hot(n),
            "bare asyncio connection": await bare(n)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--round-trips", type=int, default=5000)
    args = parser.parse_args()
    setup_django()
    first, second = asyncio.run(run(args.round_trips)), asyncio.run(run(args.round_trips))
    print(json.dumps({"started": now_utc(), "machine": machine(), "round_trips": args.round_trips,
                      "runs": [first, second]}, indent=2))


if __name__ == "__main__":
    main()
