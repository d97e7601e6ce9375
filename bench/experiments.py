"""What a running online experiment adds to the gateway's latency (ADR 0108): the same `prompt:` request to a
prompt with a running 50/50 experiment (sticky per end user: the split read under the prompt's stamp, the hash,
the arm's target) and to a prompt without one, in the same run, one gateway process as `make run` serves it.

    .venv/bin/python -m bench.experiments [--requests 1000] [--users 500]

Sequential on one kept-alive connection, alternating blocks of 50 requests (none / experiment) so both see the
same load; each request names one of `--users` end users (OpenAI's `user`). Also the stand-in answered directly:
"added" = through the gateway minus direct. Then the same in process, without HTTP: `PromptRefs.prepare` (what
the front door runs for a `prompt:` model, the stamp GET included) warm, 3,000 times each, alternating. Prints
p50 / p99 of each and the ratios experiment / none. Uses the
`portal_bench` database (bench/common.py). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import httpx

from bench.common import BASE_DIR, setup_django
from bench.gateway_path import gateway_process, standin_catalog, standin_process, stop
from bench.gateway_servers import free_port, pct

BLOCK = 50


def _prompt(team, name: str, admin):
    """`name` with v1 on production and v2 on staging, both on the bench's stand-in model (a rerun starts over)."""
    from apps.experiments.models import Experiment  # why: the ORM exists only after setup_django()
    from apps.prompts.content import Draft
    from apps.prompts.models import Label, Prompt
    from apps.prompts.services import label_set, prompt_create, version_create

    old = Prompt.objects.filter(name=name).first()
    if old is not None:
        Experiment.objects.filter(prompt=old).delete()
        old.delete()

    def draft(text):
        return Draft(kind="text", template=text, config={"model": "bench-chat", "max_tokens": 16})

    prompt = prompt_create(team=team, name=name, actor=admin, draft=draft("Answer briefly: {{ question }}"))
    Label.objects.create(prompt=prompt, name="production", version=prompt.versions.get())
    v2 = version_create(prompt=prompt, actor=admin, draft=draft("Answer in one line: {{ question }}")).version
    label_set(prompt=prompt, label="staging", version=v2, actor=admin)
    return prompt


def body(prompt: str, user: int) -> dict:
    return {"model": f"prompt:{prompt}@production", "messages": [], "user": f"user-{user}",
            "metadata": {"question": "How long do refunds take?"}}


def run(url: str, headers: dict, n: int, users: int) -> dict[str, list[float]]:
    times = {"none": [], "experiment": []}
    prompts = {"none": "bench/exp-none", "experiment": "bench/exp-on"}
    with httpx.Client(headers=headers, timeout=30) as client:
        for prompt in prompts.values():  # warm: each arm target resolved once
            for user in range(min(users, 60)):
                client.post(url, json=body(prompt, user)).raise_for_status()
        for block in range(0, 2 * n, BLOCK):
            mode = "none" if (block // BLOCK) % 2 == 0 else "experiment"
            for i in range(block, block + BLOCK):
                started = time.perf_counter()
                client.post(url, json=body(prompts[mode], i % users)).raise_for_status()
                times[mode].append((time.perf_counter() - started) * 1000)
    return times


def in_process(key, n: int, users: int) -> dict[str, list[float]]:
    """`PromptRefs.prepare` timed in one event loop, warm, alternating blocks of the two prompts."""
    import asyncio

    from apps.gateway.keys import KeyInfo
    from apps.gateway.prompt_ref import PromptRefs

    refs, info = PromptRefs(), KeyInfo.of(key)
    prompts = {"none": "bench/exp-none", "experiment": "bench/exp-on"}

    async def go() -> dict[str, list[float]]:
        times = {"none": [], "experiment": []}
        for prompt in prompts.values():
            for user in range(users):
                await refs.prepare(body(prompt, user), info)
        for block in range(0, 2 * n, BLOCK):
            mode = "none" if (block // BLOCK) % 2 == 0 else "experiment"
            for i in range(block, block + BLOCK):
                started = time.perf_counter()
                await refs.prepare(body(prompts[mode], i % users), info)
                times[mode].append((time.perf_counter() - started) * 1000)
        return times

    return asyncio.run(go())


def direct(url: str, n: int) -> list[float]:
    payload = {"model": "standin-chat", "messages": [{"role": "user", "content": "Answer briefly: How long?"}],
               "max_tokens": 16}
    times = []
    with httpx.Client(timeout=30) as client:
        for _ in range(30):
            client.post(url, json=payload).raise_for_status()
        for _ in range(n):
            started = time.perf_counter()
            client.post(url, json=payload).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--users", type=int, default=500)
    args = parser.parse_args()
    setup_django()
    from django.contrib.auth import get_user_model

    from apps.core import redis as portal_redis
    from apps.experiments import services
    from apps.gateway import recording
    from apps.gateway.services import gateway_key_create

    standin_port, gateway_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(BASE_DIR)}
    standin = standin_process(standin_port, env)
    gateway = None
    try:
        team = standin_catalog(standin_port)
        admin, _ = get_user_model().objects.get_or_create(username="bench-admin",
                                                           defaults={"is_staff": True, "is_superuser": True})
        _prompt(team, "bench/exp-none", admin)
        on = _prompt(team, "bench/exp-on", admin)
        experiment = services.experiment_create(actor=admin, prompt=on, name="bench", arms=[
            {"key": "control", "weight": 50, "label": "production"},
            {"key": "candidate", "weight": 50, "label": "staging"}])
        services.experiment_start(experiment=experiment, actor=admin)
        issued = gateway_key_create(team=team, name="bench-exp", feature="bench")
        secret = issued.secret
        gateway = gateway_process(gateway_port, env)
        base = direct(f"http://127.0.0.1:{standin_port}/v1/chat/completions", args.requests)
        times = run(f"http://127.0.0.1:{gateway_port}/v1/chat/completions", {"Authorization": f"Bearer {secret}"},
                    args.requests, args.users)
        result = {"load_average": os.getloadavg(), "requests_each": args.requests, "users": args.users,
                  "direct": {"p50_ms": pct(base, 0.5), "p99_ms": pct(base, 0.99)}}
        for mode, values in times.items():
            result[mode] = {"p50_ms": pct(values, 0.5), "p99_ms": pct(values, 0.99),
                            "added_p50_ms": round(pct(values, 0.5) - pct(base, 0.5), 3)}
        result["ratio_p50"] = round(result["experiment"]["p50_ms"] / result["none"]["p50_ms"], 3)
        local = in_process(issued.key, 3000, args.users)
        result["in_process_prepare"] = {mode: {"p50_ms": pct(values, 0.5), "p99_ms": pct(values, 0.99)}
                                        for mode, values in local.items()}
        result["in_process_prepare"]["ratio_p50"] = round(pct(local["experiment"], 0.5) / pct(local["none"], 0.5), 3)
        result["ratio_added_p50"] = round(result["experiment"]["added_p50_ms"] / result["none"]["added_p50_ms"], 3) \
            if result["none"]["added_p50_ms"] > 0 else None
        print(json.dumps(result, indent=1))
    finally:
        stop(gateway, standin)
        portal_redis.client().delete(recording.stream_key())


if __name__ == "__main__":
    main()
