"""Budgets before the call (issue #14, "0 overspend beyond one call"): N races of C concurrent requests through
the real gateway (one worker, as `make run` serves it) against a budget with a hard cap, and what the reservation adds.

    .venv/bin/python -m bench.gateway_budget_race [--races 5] [--concurrency 100] [--cap 0.50] [--requests 500]

Each race: a fresh hard-capped budget (its own feature) and key; C requests at once with the official
AsyncOpenAI client (no SDK retries); the recorder writes the ledger; overspend = ledger spend − cap, against one
call's worst case. Then the reservation's cost, side by side in the same run: (1) the reserve + settle scripts
alone (Redis round trips, in process), (2) sequential requests through the gateway with a budgeted key and with
an unbudgeted one, interleaved (stand-in latency 0). Uses the `portal_bench` database, Redis keys under CACHE_KEY_PREFIX
`bench-budget`, and the stand-in upstream as a separate process. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import time
import uuid
from decimal import Decimal

import httpx

from bench.common import BASE_DIR, setup_django
from bench.gateway_path import gateway_process, standin_chat_model, stop, wait
from bench.gateway_servers import free_port, pct

QUESTION = [{"role": "user", "content": "How long do refunds take for an order paid by card last week, please?"}]
MAX_TOKENS = 10
IN_PRICE, OUT_PRICE = Decimal("1000"), Decimal("2000")  # per million tokens: one call costs a few cents


def race(base_url: str, secret: str, concurrency: int) -> dict:
    from openai import AsyncOpenAI, RateLimitError

    async def go() -> list:
        sdk = AsyncOpenAI(base_url=base_url, api_key=secret, max_retries=0, timeout=60)

        async def one():
            try:
                await sdk.chat.completions.create(model="bench-budget-chat", messages=QUESTION, max_tokens=MAX_TOKENS)
                return "ok"
            except RateLimitError as refusal:
                return refusal.code or "429"
            except Exception as exc:  # noqa: BLE001 - counted, shown
                return type(exc).__name__

        try:
            return await asyncio.gather(*(one() for _ in range(concurrency)))
        finally:
            await sdk.close()

    outcomes = asyncio.run(go())
    return {kind: outcomes.count(kind) for kind in set(outcomes)}


def script_latency(n: int) -> dict:
    """The reserve and settle scripts alone, one request at a time (what a budgeted call adds in Redis)."""
    from apps.core import redis as portal_redis
    from apps.costs import selectors
    from apps.gateway import budgets

    counters = [budgets.Counter(name=f"k0-bench-{uuid.uuid4().hex[:6]}", cap=Decimal("1000000"),
                                expire_at=int(time.time()) + 3600)]

    async def go() -> tuple[list[float], list[float]]:
        stamp = await portal_redis.async_client().get(selectors.capped_budgets_stamp_key()) or b""
        reserve_ms, settle_ms = [], []
        for i in range(n + 50):
            rid = f"bench-{uuid.uuid4().hex}"
            started = time.perf_counter()
            outcome, _ = await budgets.reserve(rid, counters, Decimal("0.01"), stamp)
            middle = time.perf_counter()
            await budgets.settle(rid, Decimal("0.005"))
            ended = time.perf_counter()
            assert outcome == "ok", outcome
            if i >= 50:
                reserve_ms.append((middle - started) * 1000)
                settle_ms.append((ended - middle) * 1000)
        return reserve_ms, settle_ms

    reserve_ms, settle_ms = asyncio.run(go())
    return {"reserve_p50_ms": pct(reserve_ms, 0.5), "reserve_p99_ms": pct(reserve_ms, 0.99),
            "settle_p50_ms": pct(settle_ms, 0.5), "settle_p99_ms": pct(settle_ms, 0.99)}


def side_by_side(url: str, budgeted: str, plain: str, n: int) -> dict:
    """Sequential requests, alternating a key with a budget and one without (same server, same moment)."""
    body = {"model": "bench-budget-chat", "messages": QUESTION, "max_tokens": MAX_TOKENS}
    times: dict[str, list[float]] = {"budgeted": [], "plain": []}
    with httpx.Client() as client:
        for i in range(2 * (n + 30)):
            name = "budgeted" if i % 2 else "plain"
            secret = budgeted if name == "budgeted" else plain
            started = time.perf_counter()
            client.post(url, json=body, headers={"Authorization": f"Bearer {secret}"}).raise_for_status()
            if i >= 60:
                times[name].append((time.perf_counter() - started) * 1000)
    out = {name: {"p50_ms": pct(t, 0.5), "p99_ms": pct(t, 0.99)} for name, t in times.items()}
    out["added"] = {q: round(out["budgeted"][q] - out["plain"][q], 3) for q in ("p50_ms", "p99_ms")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--races", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--cap", default="0.50", help="the first race's cap (each next one a fifth of a call higher)")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--latency-ms", type=int, default=20, help="the stand-in's latency (calls overlap)")
    args = parser.parse_args()
    os.environ.setdefault("CACHE_KEY_PREFIX", "bench-budget")
    setup_django()
    from django.conf import settings
    from django.db.models import Sum

    from apps.accounts.models import Team
    from apps.core import redis as portal_redis
    from apps.costs.models import Budget, Price, UsageEvent
    from apps.gateway import budgets, recording
    from apps.gateway.services import gateway_key_create
    from apps.llm import callcore
    from apps.llm.models import Model
    from apps.llm.results import ChatRequest

    standin_port, gateway_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(BASE_DIR)}
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: portal_redis.client().delete(recording.stream_key()))
        standin = subprocess.Popen([sys.executable, "manage.py", "llm_standin", "--port", str(standin_port),
                                    "--latency-ms", str(args.latency_ms)], cwd=BASE_DIR, env=env)
        stack.callback(stop, standin)
        wait(f"http://127.0.0.1:{standin_port}/standin/stats", ok=(200,))
        standin_chat_model("bench-budget-chat", standin_port)
        # priced under its own name, so the other gateway benches' stand-in models stay unpriced
        Model.objects.filter(name="bench-budget-chat").update(price_name="bench-budget-chat")
        Price.objects.filter(model_name="bench-budget-chat").delete()
        Price.objects.create(model_name="bench-budget-chat", input_per_mtok=IN_PRICE, output_per_mtok=OUT_PRICE,
                             valid_from="2020-01-01T00:00:00Z")
        team, _ = Team.objects.get_or_create(slug="bench-budget", defaults={"name": "Bench budget"})
        stack.callback(stop, gateway_process(gateway_port, env))
        base_url = f"http://127.0.0.1:{gateway_port}/v1"
        tokens = math.ceil(callcore.input_estimate(ChatRequest(messages=QUESTION))
                           * (1 + settings.GATEWAY_BUDGET_INPUT_MARGIN))
        worst = (tokens * IN_PRICE + MAX_TOKENS * OUT_PRICE) / 1_000_000
        cap = Decimal(args.cap)

        races = []
        for i in range(args.races):
            # each race's cap a fifth of a worst case above the last: the cap binds at a different fill each time
            race_cap = (cap + i * worst / 5).quantize(Decimal("0.01"))
            feature = f"race-{uuid.uuid4().hex[:8]}"
            Budget.objects.create(name=f"Bench race {i}", team=team, feature=feature, amount=race_cap,
                                  hard_cap=race_cap)
            secret = gateway_key_create(team=team, name=feature, feature=feature).secret
            started = time.perf_counter()
            outcomes = race(base_url, secret, args.concurrency)
            seconds = time.perf_counter() - started
            recording.drain_all("bench-budget-writer")
            spent = UsageEvent.objects.filter(feature=feature).aggregate(s=Sum("cost"))["s"] or Decimal(0)
            over = max(Decimal(0), spent - race_cap)
            races.append({"cap": str(race_cap), "outcomes": outcomes, "seconds": round(seconds, 2),
                          "spent": str(spent), "overspend": str(over),
                          "overspend_in_worst_cases": round(float(over / worst), 3)})

        # the added latency: a key under a budget (one EVALSHA before, one after) against one with none, the
        # stand-in answering at once so the difference is not lost in its latency
        httpx.post(f"http://127.0.0.1:{standin_port}/standin/control", json={"latency_ms": 0}).raise_for_status()
        feature = f"latency-{uuid.uuid4().hex[:8]}"
        Budget.objects.create(name="Bench latency", team=team, feature=feature, amount=Decimal("1000000"),
                              hard_cap=Decimal("1000000"))
        budgeted = gateway_key_create(team=team, name=feature, feature=feature).secret
        plain = gateway_key_create(team=team, name="plain", feature=f"plain-{feature}").secret
        paired = side_by_side(f"{base_url}/chat/completions", budgeted, plain, args.requests)
        recording.drain_all("bench-budget-writer")
        scripts = script_latency(args.requests)
        budgets.sweep()
        result = {
            "load_average": os.getloadavg(), "input_margin": settings.GATEWAY_BUDGET_INPUT_MARGIN,
            "races": args.races, "concurrency": args.concurrency,
            "worst_case_per_call": str(worst.quantize(Decimal("0.00000001"))),
            "max_overspend_in_worst_cases": max(r["overspend_in_worst_cases"] for r in races),
            "race_detail": races, "scripts": scripts, "through_gateway": paired,
        }
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
