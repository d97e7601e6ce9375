"""Eval run throughput and resume-after-kill, against an OpenAI-compatible stand-in answering after 200 ms.

1. 1,000 items at concurrency 20 (the provider's shared limit, EVALS_PROVIDER_CONCURRENCY) on real
   `celery -A portal worker -Q llm` processes: wall time from queueing the run to `finished`, and the most
   calls the stand-in ever had in flight (must be ≤ 20). Goal: < 15 s (ideal: 1,000 × 0.2 s / 20 = 10 s).
2. The same again, but the worker is killed with SIGKILL after ~300 results; the stalled-run job puts back its
   claims (its heartbeat is gone) and re-queues the run; a new worker finishes it. Checks: exactly 1,000
   results, no (item, repetition) twice, calls made again ≤ the calls in flight when the worker died.

Runs against the `portal_bench` database and Redis db 14 (so a dev worker never takes these tasks).

Usage: python -m bench.evals_run [--items 1000] [--concurrency 20] [--delay 0.2] [--workers 2] [--skip-kill]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import uuid

from bench.common import embedded_module, setup_django, use_bench_database
from tests.evals.worker import wait_for, worker_start, worker_stop

DATABASE = "portal_bench_evals"  # its own database: other benches' data and migrations do not interfere
REDIS_DB = 14


def use_bench_redis() -> None:
    if os.environ.get("REDIS_URL"):
        return
    url = embedded_module().redis_url()
    os.environ["REDIS_URL"] = f"{url.split('?')[0]}?db={REDIS_DB}" if url.startswith("unix") else \
        url.rsplit("/", 1)[0] + f"/{REDIS_DB}"


def seed(items: int, delay_server) -> dict:
    from django.contrib.auth import get_user_model

    from apps.accounts.models import Membership, Role, Team
    from apps.core.request_context import acting_as
    from apps.evals.datasets import dataset_create, dataset_items_add
    from apps.evals.services import evaluator_create
    from apps.llm.services import catalog_seed_local
    from apps.prompts.content import Draft
    from apps.prompts.services import prompt_create
    from tests.evals.standin import register_standin

    catalog_seed_local()
    team, _ = Team.objects.get_or_create(slug="bench-evals", defaults={"name": "Bench evals"})
    user, _ = get_user_model().objects.get_or_create(username="bench-evals-engineer")
    Membership.objects.get_or_create(team=team, user=user, defaults={"role": Role.ENGINEER})
    model = register_standin(delay_server, name="bench-standin", model="bench-standin-chat", max_retries=3)
    tag = uuid.uuid4().hex[:8]
    with acting_as(user):
        prompt = prompt_create(team=team, name=f"bench/evals-{tag}", actor=user, commit_message="bench",
                               draft=Draft(kind="text", template="Question: {{ question }}",
                                           config={"model": model.name}))
        dataset = dataset_create(team=team, name=f"bench/evals-{tag}", actor=user)
        dataset_items_add(dataset=dataset, actor=user,
                          items=[{"id": f"q{i}", "inputs": {"question": f"Question number {i}?"},
                                  "expected": f"Answer: Question number {i}?"} for i in range(items)])
        dataset.refresh_from_db()
        evaluators = [evaluator_create(team=team, name=f"bench-prefix-{tag}", kind="starts_with",
                                       params={"prefix": "Answer:"}, actor=user),
                      evaluator_create(team=team, name=f"bench-exact-{tag}", kind="exact_match", actor=user)]
    return {"user": user, "version": prompt.versions.get(), "dataset": dataset, "evaluators": evaluators}


def worker_env(tasks_per_run: int) -> dict:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.dev", "DEBUG": "false",
            "LOG_LEVEL": "WARNING", "PORTAL_WORKER_HEARTBEAT_TTL": "3", "PYTHONUNBUFFERED": "1",
            "EVALS_TASKS_PER_RUN": str(tasks_per_run)}


def create_run(setup: dict, concurrency: int):
    from apps.evals.services import run_create

    return run_create(actor=setup["user"], dataset=setup["dataset"], evaluators=setup["evaluators"],
                      target_ref={"version_id": setup["version"].pk}, concurrency=concurrency)


def check(run_id: int, items: int) -> dict:
    from django.db.models import Count

    from apps.costs.models import UsageEvent
    from apps.evals.models import EvalResult, EvalRun

    run = EvalRun.objects.get(pk=run_id)
    results = EvalResult.objects.filter(run_id=run_id)
    duplicates = results.values("item", "repetition").annotate(n=Count("id")).filter(n__gt=1).count()
    calls = UsageEvent.objects.filter(feature=f"eval-run-{run_id}").count()
    return {"status": run.status, "results": results.count(), "done": results.filter(status="done").count(),
            "duplicates": duplicates, "progress": f"{run.progress_done}/{run.progress_total}",
            "model_calls": calls, "calls_made_again": calls - items, "pass_rate": run.pass_rate}


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=1, help="worker commands started")
    parser.add_argument("--pool", default="prefork", help="prefork (one child per core) or threads")
    parser.add_argument("--worker-concurrency", type=int, default=3,
                        help="Celery pool size per worker (prefork: tasks per run + 1, the coordinator)")
    parser.add_argument("--tasks-per-run", type=int, default=2, help="EVALS_TASKS_PER_RUN")
    parser.add_argument("--skip-kill", action="store_true")
    args = parser.parse_args(argv)
    use_bench_database(DATABASE)
    use_bench_redis()
    os.environ["EVALS_DEFAULT_PROVIDER_CONCURRENCY"] = str(args.concurrency)
    setup_django(DATABASE)
    from django.conf import settings

    from apps.evals import runner
    from apps.evals.limiter import redis_client
    from apps.evals.models import EvalRun, RunStatus
    from tests.evals.standin import StandIn

    settings.EVALS_DEFAULT_PROVIDER_CONCURRENCY = args.concurrency
    redis_client().flushdb()  # a clean bench broker: no stale tasks or limiter slots
    out: dict = {"items": args.items, "concurrency": args.concurrency, "stand_in_delay_s": args.delay,
                 "workers": args.workers, "pool": args.pool, "worker_concurrency": args.worker_concurrency,
                 "tasks_per_run": args.tasks_per_run, "goal_s": 15, "limit_s": 10}

    def start(name: str):
        return worker_start(name, env=worker_env(args.tasks_per_run), pool=args.pool,
                            concurrency=args.worker_concurrency, own_group=True)

    with StandIn(delay=args.delay) as server:
        setup = seed(args.items, server)
        workers = [start(f"bench-evals-{i}") for i in range(args.workers)]
        try:
            time.sleep(6)  # let the workers boot (Django + Celery), so the figure is the run, not start-up
            started = time.monotonic()
            run = create_run(setup, args.concurrency)
            wait_for(lambda: EvalRun.objects.get(pk=run.pk).status == RunStatus.FINISHED, 300)
            elapsed = time.monotonic() - started
            out["throughput"] = {"seconds": round(elapsed, 2), "items_per_s": round(args.items / elapsed, 1),
                                 "max_in_flight_at_stand_in": server.max_in_flight, **check(run.pk, args.items)}
        finally:
            for process, _ in workers:
                worker_stop(process)
        if not args.skip_kill:
            server.max_in_flight = 0
            setup = seed(args.items, server)
            victim, victim_host = start("bench-evals-victim")
            replacement = None
            try:
                time.sleep(6)
                started = time.monotonic()
                run = create_run(setup, args.concurrency)
                wait_for(lambda: EvalRun.objects.get(pk=run.pk).progress_done >= args.items * 0.3, 300)
                worker_stop(victim, signal.SIGKILL)
                done_at_kill = EvalRun.objects.get(pk=run.pk).progress_done
                wait_for(lambda: runner._worker_alive(f"celery:{victim_host}") is False, 60)
                resumed = runner.runs_resume_stalled(stall_seconds=0)
                replacement, _ = start("bench-evals-replacement")
                wait_for(lambda: EvalRun.objects.get(pk=run.pk).status == RunStatus.FINISHED, 300)
                out["kill_and_resume"] = {"done_at_kill": done_at_kill, "resumed": resumed == [run.pk],
                                          "seconds_total_incl_restart": round(time.monotonic() - started, 2),
                                          **check(run.pk, args.items)}
            finally:
                worker_stop(victim, signal.SIGKILL)
                if replacement is not None:
                    worker_stop(replacement)
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2, default=str))
