"""Time from a signal to the incident (or suggestion) existing, with detection on its beat interval (issue #15;
goal ≤ 60 s).

A thread runs `detection_rules_evaluate_task` every `--beat` seconds (default: the interval in
portal/scheduled.py), as Celery beat + a worker would; the trials start at arbitrary phases of it. Two signals:
- provider outage: the stand-in (`manage.py llm_standin`, its own process) starts failing the primary deployment
  of an alias; the portal's calls (calls.chat, about 5 a second, as traffic would be) fail over and open its breaker;
  a Sev1 `breaker_open` rule with auto open → the incident exists;
- budget cap hit: the ledger row of a gateway call refused with 429 insufficient_quota (what the gateway's
  recorder writes; its drain delay is not included) → a Sev2 `budget_cap` suggestion exists.
Each trial uses a new team, so each finding is new (earlier teams' findings only fold). Database
`portal_bench_incident_detection`.

Usage: python -m bench.incident_detection [--trials 8] [--beat 30]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time

import httpx

from bench.common import BASE_DIR, setup_django, summary_ms, use_bench_database
from bench.costs_ingest import free_port
from bench.gateway_path import standin_chat_model, stop, wait

DATABASE = "portal_bench_incident_detection"
ALIAS = "bench-detect"


class Beat(threading.Thread):
    """The beat job every `interval` seconds, from a random phase."""

    def __init__(self, interval: float):
        super().__init__(daemon=True)
        self.interval, self.stopped, self.runs = interval, threading.Event(), []

    def run(self):
        from django.db import connection

        from apps.incidents.tasks import detection_rules_evaluate_task

        next_at = time.monotonic() + random.uniform(0, self.interval)
        while not self.stopped.wait(max(0.0, next_at - time.monotonic())):
            started = time.perf_counter()
            detection_rules_evaluate_task()
            self.runs.append(time.perf_counter() - started)
            next_at += self.interval
        connection.close()


def _until(check, timeout: float) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise RuntimeError("no incident or suggestion within the timeout")
        time.sleep(0.05)
    return time.monotonic()


def _seconds(samples: list[float]) -> dict:
    return {"n": len(samples), "p50_s": round(statistics.median(samples), 2), "max_s": round(max(samples), 2)}


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--beat", type=float, default=None)
    args = parser.parse_args(argv)
    use_bench_database(DATABASE)
    setup_django(DATABASE)
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from apps.accounts.models import Team
    from apps.costs.models import CallStatus, Source, UsageEvent
    from apps.costs.services import UsageContext
    from apps.incidents.models import DetectionRule, Incident, IncidentSuggestion, Signal
    from apps.llm import breakers, calls
    from apps.llm.aliases import alias_create, deployment_create
    from apps.llm.errors import LlmError
    from apps.llm.models import Model, ModelAlias
    from portal.scheduled import BEAT_SCHEDULE

    beat_s = args.beat or BEAT_SCHEDULE["incidents-detection-rules"]["schedule"]
    DetectionRule.objects.all().delete()
    DetectionRule.objects.create(name="bench breaker", signal=Signal.BREAKER_OPEN, threshold=1, window_minutes=10,
                                 severity=1, auto_open=True)
    DetectionRule.objects.create(name="bench cap", signal=Signal.BUDGET_CAP, threshold=1, window_minutes=10,
                                 severity=2)
    standin_port = free_port()
    standin = subprocess.Popen([sys.executable, "manage.py", "llm_standin", "--port", str(standin_port)],
                               cwd=BASE_DIR, env={**os.environ, "PYTHONPATH": str(BASE_DIR)})
    beat = Beat(beat_s)
    try:
        control = f"http://127.0.0.1:{standin_port}/standin/control"
        wait(f"http://127.0.0.1:{standin_port}/standin/stats", ok=(200,))
        ModelAlias.objects.filter(name=ALIAS).delete()
        for name in ("bench-detect-primary", "bench-detect-fallback"):
            standin_chat_model(name, standin_port)
        Model.objects.filter(name="bench-detect-primary").update(remote_name="svc-a")
        alias = alias_create(name=ALIAS, kind="chat")
        primary = deployment_create(alias=alias, model=Model.objects.get(name="bench-detect-primary"), priority=0)
        deployment_create(alias=alias, model=Model.objects.get(name="bench-detect-fallback"), priority=1)
        beat.start()
        outage, cap = [], []
        for trial in range(args.trials):
            team = Team.objects.create(slug=f"bench-detect-{time.time_ns()}", name=f"Bench detection {trial}")
            # provider outage
            breakers.reset(primary.pk)
            context = UsageContext(source="api", team_id=team.pk, feature="bench")
            t0 = time.monotonic()
            httpx.post(control, json={"fail_models": {"svc-a": 503}}, timeout=5)
            done = threading.Event()

            def traffic(context=context, done=done):
                try:
                    while not done.is_set():
                        with contextlib.suppress(LlmError):  # every deployment down: the call fails, as users see
                            calls.chat(model=ALIAS, messages=[{"role": "user", "content": "hi"}], context=context)
                        done.wait(0.2)
                finally:
                    connection.close()  # back to the pool: each trial's thread has its own

            caller = threading.Thread(target=traffic, daemon=True)
            caller.start()
            t1 = _until(lambda team=team: Incident.objects.filter(team=team).exists(), 4 * beat_s + 30)
            done.set()
            caller.join()
            httpx.post(control, json={"fail_models": {}}, timeout=5)
            outage.append(t1 - t0)
            time.sleep(random.uniform(0, 2))
            # budget cap hit
            t0 = time.monotonic()
            UsageEvent.objects.create(request_id=f"bench-cap-{time.time_ns()}", team=team, feature="bench",
                                      model="bench-detect-primary", source=Source.GATEWAY, status=CallStatus.REFUSED,
                                      error_type="insufficient_quota", occurred_at=timezone.now())
            t1 = _until(lambda team=team: IncidentSuggestion.objects.filter(team=team, rule__signal=Signal.BUDGET_CAP)
                        .exists(), 4 * beat_s + 30)
            cap.append(t1 - t0)
            time.sleep(random.uniform(0, 2))
        return {"beat_s": beat_s, "trials": args.trials,
                "breaker": {"window_s": settings.LLM_BREAKER_WINDOW_SECONDS,
                            "min_requests": settings.LLM_BREAKER_MIN_REQUESTS},
                "outage_to_incident": _seconds(outage), "cap_hit_to_suggestion": _seconds(cap),
                "evaluation": summary_ms(beat.runs)}
    finally:
        beat.stopped.set()
        httpx.post(f"http://127.0.0.1:{standin_port}/standin/control", json={"fail_models": {}}, timeout=5) \
            if standin.poll() is None else None
        stop(standin)


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
