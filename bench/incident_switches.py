"""Issue #15's figure: from the click on a switch to the last gateway process obeying it (p50 / p99).

    .venv/bin/python -m bench.incident_switches [--toggles 200] [--kind model_fallback|feature_off]
        [--upstream-ms 5]

Two gateway processes (as `make run` serves them) and the stand-in upstream as its own process.
The switch is flipped `--toggles` times through the incidents service (`mitigation_apply`, then
`mitigation_undo`, alternately: what the incident page's button calls). After each flip, one thread per gateway
process polls it back to back over a kept-alive raw HTTP connection (the polling is the load) until an answer
obeys: model fallback — the fallback's model answers (the stand-in's `ctx-1`: a 400); feature off — 423, and after an undo,
200. The time of a process is from just before the service call to the obeying answer's arrival; a flip's
figure is its slower process. Also split: the service call's own time, and from its return (committed) to the
last process obeying. Uses the `portal_bench` database (bench/common.py). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import httpx

from bench.common import BASE_DIR, setup_django
from bench.gateway_path import gateway_process, standin_chat_model, stop, wait
from bench.gateway_servers import free_port, pct

ALIAS = "bench-switch"
MODELS = ("bench-switch-a", "bench-switch-b")  # the alias's own model, the fallback's
GOAL_MS = 1000.0
TIMEOUT_S = 10.0


def obeys(kind: str, on: bool, response: httpx.Response) -> bool:
    if kind == "feature_off":
        return response.status_code == (423 if on else 200)
    # The fallback's model is the stand-in's "ctx-1" (any prompt is too long: 400 context_length_exceeded),
    # told apart from the alias's own model without reading the answer.
    return response.status_code == (400 if on else 200)


REQUEST_MS: list[float] = []  # every poll's own round trip: what one request costs on this machine now


def poll(client: httpx.Client, url: str, kind: str, on: bool, started: float, out: list, index: int) -> None:
    """Ask `url` back to back on its kept-alive client (made once: making one costs tens of ms) until it obeys."""
    body = {"model": ALIAS, "messages": [{"role": "user", "content": "How long do refunds take?"}], "max_tokens": 8}
    while time.perf_counter() - started < TIMEOUT_S:
        sent = time.perf_counter()
        response = client.post(url, json=body)
        REQUEST_MS.append((time.perf_counter() - sent) * 1000)
        if obeys(kind, on, response):
            out[index] = (time.perf_counter() - started) * 1000
            return
    out[index] = None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--toggles", type=int, default=200)
    parser.add_argument("--kind", choices=("model_fallback", "feature_off"), default="model_fallback")
    parser.add_argument("--upstream-ms", type=float, default=5.0)
    args = parser.parse_args()
    setup_django()
    from django.contrib.auth import get_user_model  # why: the ORM exists only after setup_django()

    from apps.accounts.models import Team
    from apps.gateway.services import gateway_key_create
    from apps.incidents import mitigations, services
    from apps.incidents.models import Mitigation
    from apps.llm.aliases import alias_create, deployment_create
    from apps.llm.models import Model, ModelAlias

    standin_port, ports = free_port(), (free_port(), free_port())
    env = {**os.environ, "PYTHONPATH": str(BASE_DIR)}
    standin = subprocess.Popen([sys.executable, "manage.py", "llm_standin", "--port", str(standin_port),
                                "--latency-ms", str(args.upstream_ms)], cwd=BASE_DIR, env=env)
    gateways = []
    try:
        wait(f"http://127.0.0.1:{standin_port}/standin/stats", ok=(200,))
        ModelAlias.objects.filter(name=ALIAS).delete()
        for name in MODELS:
            standin_chat_model(name, standin_port)
        Model.objects.filter(name=MODELS[1]).update(remote_name="ctx-1")
        deployment_create(alias=alias_create(name=ALIAS, kind="chat"), model=Model.objects.get(name=MODELS[0]))
        team, _ = Team.objects.get_or_create(slug="bench-incidents", defaults={"name": "Bench incidents"})
        admin, _ = get_user_model().objects.get_or_create(username="bench-incident-admin", defaults={"is_staff": True})
        key = gateway_key_create(team=team, name="bench-switch", feature="bench-switch")
        Mitigation.objects.filter(incident__team=team, undone_at__isnull=True).update(undone_at=time_now())
        incident = services.incident_declare(actor=admin, team=team, title="Bench: click to obey",
                                             kind="provider_outage", severity=2)
        gateways = [gateway_process(port, env) for port in ports]
        urls = [f"http://127.0.0.1:{port}/v1/chat/completions" for port in ports]
        target, params = ({"scope": "alias", "name": ALIAS}, {"to": MODELS[1]}) if args.kind == "model_fallback" \
            else ({"scope": "key", "key_id": key.key.pk}, {})
        clients = [httpx.Client(headers={"Authorization": f"Bearer {key.secret}"}, timeout=10) for _ in urls]
        for client, url in zip(clients, urls, strict=True):  # warm: routes, key and admission caches filled
            poll(client, url, args.kind, False, time.perf_counter(), [None], 0)
        REQUEST_MS.clear()  # the warm-up's first requests are cold: not what a flip waits on
        flips, per_process, timeouts, services_ms, after_commit = [], [[], []], 0, [], []
        mitigation = None
        load_before = os.getloadavg()
        for i in range(args.toggles):
            on = i % 2 == 0
            out = [None, None]
            started = time.perf_counter()
            if on:
                mitigation = mitigations.mitigation_apply(incident=incident, actor=admin, kind=args.kind,
                                                          target=target, params=params, reason="bench")
            else:
                mitigations.mitigation_undo(mitigation=mitigation, actor=admin)
            committed = (time.perf_counter() - started) * 1000
            threads = [threading.Thread(target=poll, args=(clients[n], url, args.kind, on, started, out, n))
                       for n, url in enumerate(urls)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if None in out:
                timeouts += 1
                continue
            for n, ms in enumerate(out):
                per_process[n].append(ms)
            flips.append(max(out))
            services_ms.append(committed)
            after_commit.append(max(out) - committed)
        if mitigation is not None and mitigation.undone_at is None:
            mitigations.mitigation_undo(mitigation=mitigation, actor=admin)
        result = {"kind": args.kind, "toggles": args.toggles, "timeouts": timeouts, "gateway_processes": 2,
                  "upstream_ms": args.upstream_ms, "load_average_before": load_before,
                  "load_average_after": os.getloadavg(),
                  "last_process_obeys_ms": {"p50": pct(flips, 0.5), "p99": pct(flips, 0.99), "max": max(flips)},
                  "per_process_p50_ms": [pct(times, 0.5) for times in per_process],
                  # the click's own time (the service: validation, the row, timeline, audit, commit) and what
                  # follows it until the last process obeys (propagation)
                  "service_ms": {"p50": pct(services_ms, 0.5), "p99": pct(services_ms, 0.99)},
                  "after_commit_ms": {"p50": pct(after_commit, 0.5), "p99": pct(after_commit, 0.99)},
                  "poll_request_ms": {"p50": pct(REQUEST_MS, 0.5), "p99": pct(REQUEST_MS, 0.99),
                                      "count": len(REQUEST_MS)},
                  "within_goal_share": round(sum(ms <= GOAL_MS for ms in flips) / len(flips), 3),
                  "goal_ms": GOAL_MS}
        print(json.dumps(result, indent=1))
    finally:
        stop(*gateways, standin)


def time_now():
    from django.utils import timezone  # why: settings exist only after setup_django()

    return timezone.now()


if __name__ == "__main__":
    main()
