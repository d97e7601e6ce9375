"""Sustained ingestion through POST /api/v1/usage: gunicorn on a free loopback port, batches of 500 events
from a few concurrent clients, rollups and budget counters included (they are written in the same
transaction as the events). Prints events per second; the goal is 5,000 on a 2-core machine.

    python -m bench.costs_ingest [--batches 240] [--clients 4] [--workers 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

from bench.common import BASE_DIR, summary_ms
from bench.costs_common import setup

DATABASE = "portal_bench"
PREFIX = "bench-ingest-"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare() -> str:
    from django.contrib.auth import get_user_model

    from apps.accounts.models import Role, Team
    from apps.accounts.services import api_token_create, membership_set, team_create
    from apps.core.request_context import acting_as
    from apps.costs.services import budget_create, prices_seed

    with acting_as(None):
        prices_seed()
        team = Team.objects.filter(slug="bench-ingest").first() or team_create(name="Bench ingest",
                                                                               slug="bench-ingest")
        user, _ = get_user_model().objects.get_or_create(username="bench-ingest", defaults={"email": "b@example.com"})
        membership_set(team=team, user=user, role=Role.OWNER)
        if not team.budgets.exists():  # a budget so counters and threshold checks are part of the measured path
            budget_create(actor=user, name="Bench ingest monthly", team=team, amount="1000000")
        return api_token_create(team=team, user=user, name="bench", scope="ingest", days=1).secret


FEATURES = [  # (feature, model, prompt version): a feature uses one model and one prompt version at a time
    ("ticket-answer", "gpt-4o-mini", 4), ("ticket-summarise", "gpt-4.1-mini", 2), ("triage", "gpt-4.1-nano", 1),
    ("query-rewrite", "gpt-4o-mini", 3), ("answer-synthesis", "gpt-4o", 2), ("email-draft", "claude-sonnet-4", 1),
    ("call-notes", "o4-mini", 1), ("code-review", "my-finetune", 1), ("policy-qa", "gemini-2.5-flash", 2),
    ("classify-intent", "gpt-4.1-nano", 5), ("extract-fields", "gpt-4o-mini", 2), ("translate", "gpt-4.1-mini", 1),
]


def make_bodies(batches: int, size: int, run: str) -> list[bytes]:
    """Near-real-time events (sent within five minutes of the call), 12 features, 30 tenants (skewed)."""
    rng = random.Random(1)
    now = datetime.now(UTC)
    bodies = []
    for b in range(batches):
        events = []
        for i in range(size):
            feature, model, version = rng.choice(FEATURES)
            input_tokens = int(rng.lognormvariate(7, 0.8)) + 1
            events.append({
                "request_id": f"{PREFIX}{run}-{b}-{i}",
                "occurred_at": (now - timedelta(seconds=rng.uniform(0, 300))).isoformat(),
                "model": model, "provider": "openai", "feature": feature,
                "tenant": f"tenant-{int(rng.random() ** 2 * 30)}", "prompt_name": feature,
                "prompt_version": version, "input_tokens": input_tokens,
                "cached_input_tokens": input_tokens // 3, "output_tokens": int(rng.lognormvariate(5, 0.7)),
                "latency_ms": rng.randrange(100, 4000), "outcome": rng.choice(["unknown", "success", "failure"]),
            })
        bodies.append(json.dumps({"events": events}).encode())
    return bodies


def run(batches: int = 240, clients: int = 4, workers: int = 3, size: int = 500) -> dict:
    setup(DATABASE)
    from django.db import connection

    secret = prepare()
    run_id = str(int(time.time()))
    bodies = make_bodies(batches, size, run_id)
    port = free_port()
    env = {**os.environ, "DEBUG": "false", "LOG_LEVEL": "WARNING", "ALLOWED_HOSTS": "127.0.0.1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "portal.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--worker-class", "sync", "--timeout", "120", "--log-level", "warning"],
        cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(port)
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        _post(port, headers, make_bodies(4, size, run_id + "-warm"))  # warm every worker's imports and caches
        queue = list(enumerate(bodies))
        lock = threading.Lock()
        latencies: list[float] = []
        accepted = [0]
        failures: list[str] = []

        def client():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            while True:
                with lock:
                    if not queue:
                        break
                    _, body = queue.pop()
                started = time.perf_counter()
                conn.request("POST", "/api/v1/usage", body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    if response.status != 200:
                        failures.append(f"{response.status} {payload[:200]!r}")
                    else:
                        accepted[0] += json.loads(payload)["accepted"]
            conn.close()

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    with connection.cursor() as c:
        c.execute("SELECT count(*) FROM costs_usageevent WHERE request_id LIKE %s", [f"{PREFIX}{run_id}-%"])
        stored = c.fetchone()[0]
        c.execute("SELECT sum(requests) FROM costs_usagerollup r JOIN accounts_team t ON t.id = r.team_id "
                  "WHERE t.slug = 'bench-ingest' AND granularity = 'day'")
        rolled = c.fetchone()[0]
        c.execute("SELECT count(*) FROM costs_usageevent e JOIN accounts_team t ON t.id = e.team_id "
                  "WHERE t.slug = 'bench-ingest'")
        all_bench = c.fetchone()[0]
        # Leave the shared bench database as found: other benches time pages over raw events.
        for table in ("costs_usageevent", "costs_usagerollup", "costs_usagetokenhistogram"):
            c.execute(f"DELETE FROM {table} WHERE team_id = (SELECT id FROM accounts_team WHERE slug = 'bench-ingest')")
        c.execute("UPDATE costs_budgetperiod SET spent = 0, reserved = 0 WHERE budget_id IN (SELECT b.id FROM "
                  "costs_budget b JOIN accounts_team t ON t.id = b.team_id WHERE t.slug = 'bench-ingest')")
    events = batches * size
    return {
        "events": events, "batch_size": size, "clients": clients, "gunicorn_workers": workers,
        "seconds": round(wall, 2), "events_per_s": round(events / wall), "goal_events_per_s": 5000,
        "accepted": accepted[0], "stored": stored, "rollups_match_events": rolled == all_bench,
        "batch_latency": summary_ms(latencies), "errors": failures[:3],
    }


def _post(port, headers, bodies):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for body in bodies:
        conn.request("POST", "/api/v1/usage", body=body, headers=headers)
        conn.getresponse().read()
    conn.close()


def _wait_for(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not listen on {port}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=240)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run(batches=args.batches, clients=args.clients, workers=args.workers), indent=2))
