"""The gateway recorder's CPU per record: `recording.drain_once` over batches of call records from the stream, the
batch priced with one query (a PriceBook, as the writer does now) and row by row (one `price_at` query per record,
as it did before), alternating in one process on the same database and Redis.

    .venv/bin/python -m bench.gateway_recorder [--batches 20] [--size 100]

`--size`: records per batch: at 500 req/s the writer's 200 ms linger (ADR 0127) gathers about 100. Each batch: that
many records of `bench-chat` (priced, 2 % errors) put on the stream, then one `drain_once` timed: the writer's own
CPU (`time.process_time`) and the wall time, which includes PostgreSQL's and Redis's work for it. Uses the
`portal_bench` database (bench/common.py). Prints one JSON object: medians per record of each way, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from contextlib import nullcontext
from unittest import mock

from bench.common import machine, now_utc, setup_django


def records(count: int, *, team_id: int, feature: str, provider: str) -> list:
    from apps.costs.models import CallStatus
    from apps.costs.pricing import TokenCounts
    from apps.costs.services import UsageContext
    from apps.llm.results import CallRecord

    made = []
    for _ in range(count):
        request_id = f"{random.getrandbits(128):032x}"
        ok = random.random() > 0.02
        made.append(CallRecord(
            request_id=request_id, provider=provider, model="bench-chat", price_name=None, operation="chat",
            context=UsageContext(source="gateway", team_id=team_id, feature=feature, request_id=request_id),
            tokens=TokenCounts(input_tokens=random.randint(20, 2000), output_tokens=random.randint(5, 500)) if ok
            else TokenCounts(), status=CallStatus.OK if ok else CallStatus.ERROR, error_type="" if ok else "upstream",
            latency_ms=random.randint(20, 40), upstream_ms=random.randint(19, 39)))
    return made


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=20, help="per way")
    parser.add_argument("--size", type=int, default=100, help="records per batch")
    args = parser.parse_args()
    setup_django()
    # why: the ORM and the apps exist only after setup_django()
    from apps.core import redis as portal_redis
    from apps.gateway import recording
    from apps.gateway.services import gateway_key_create
    from apps.llm.models import Model
    from bench.gateway_path import standin_catalog

    team = standin_catalog(1)  # the model and its price; no call reaches the port
    provider = Model.objects.get(name="bench-chat").provider.name
    key = gateway_key_create(team=team, name="bench-recorder", feature="bench-recorder").key
    client = portal_redis.client()
    client.delete(recording.stream_key())
    recording.ensure_group(client)
    ways = {"batch priced": nullcontext,
            # the writer before: no book, so each row's price is its own query (usage_row → price_at)
            "priced per row": lambda: mock.patch.object(recording.PriceBook, "load", lambda names: None)}
    figures = {name: {"cpu_ms": [], "wall_ms": []} for name in ways}
    for index in range(args.batches * len(ways) + 2):
        name = list(ways)[index % len(ways)]
        for record in records(args.size, team_id=team.pk, feature=key.feature, provider=provider):
            client.xadd(recording.stream_key(), {"r": recording.serialize(record, key.pk)})
        with ways[name]():
            cpu, wall = time.process_time(), time.perf_counter()
            handled = recording.drain_once("bench-recorder", block_ms=0, count=args.size)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        assert handled == args.size, handled
        if index >= 2:  # the first of each way warms its caches
            figures[name]["cpu_ms"].append(cpu * 1000 / args.size)
            figures[name]["wall_ms"].append(wall * 1000 / args.size)
    result = {"started": now_utc(), "machine": machine(), "batches": args.batches, "size": args.size}
    for name, figure in figures.items():
        result[name] = {"cpu_ms_per_record": round(statistics.median(figure["cpu_ms"]), 4),
                        "wall_ms_per_record": round(statistics.median(figure["wall_ms"]), 4)}
    before, now = result["priced per row"], result["batch priced"]
    result["cpu_ratio"] = round(now["cpu_ms_per_record"] / before["cpu_ms_per_record"], 3)
    result["wall_ratio"] = round(now["wall_ms_per_record"] / before["wall_ms_per_record"], 3)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
