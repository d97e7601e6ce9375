"""A real `celery -A portal worker -Q llm` subprocess is killed with SIGKILL mid-run; the stalled-run job puts
back its claims (its heartbeat is gone) and re-queues the run; a second worker finishes it with exactly one
result per item and no duplicates. Real PostgreSQL (the test database), real Redis, a real HTTP stand-in."""

from __future__ import annotations

import os
import signal

import pytest
from django.db.models import Count

from apps.costs.models import UsageEvent
from apps.evals import runner
from apps.evals.datasets import dataset_create, dataset_items_add
from apps.evals.models import EvalResult, EvalRun, RunStatus, UnitStatus
from apps.evals.services import evaluator_create, run_create
from apps.prompts.content import Draft
from apps.prompts.services import prompt_create
from tests.evals.standin import StandIn, register_standin
from tests.evals.worker import wait_for, worker_start, worker_stop

ITEMS = 60


def worker_env(settings) -> dict:
    from django.db import connection

    db = connection.settings_dict
    host = db["HOST"]
    if host.startswith("/"):
        url = f"postgresql://{db['USER']}:{db['PASSWORD']}@/{db['NAME']}?host={host}"
    else:
        url = f"postgresql://{db['USER']}:{db['PASSWORD']}@{host}:{db['PORT'] or 5432}/{db['NAME']}"
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.test", "DATABASE_URL": url,
            "REDIS_URL": settings.REDIS_URL, "PORTAL_WORKER_HEARTBEAT_TTL": "3", "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def standin_slow():
    with StandIn(delay=0.2) as server:
        yield server


def test_a_run_resumes_after_its_worker_is_killed_and_finishes_without_duplicates(
        transactional_db, settings, team, engineer, local_models, standin_slow, tmp_path):
    model = register_standin(standin_slow)
    prompt = prompt_create(team=team, name="support/kill-test", actor=engineer, commit_message="v1",
                           draft=Draft(kind="text", template="Question: {{ question }}", config={"model": model.name}))
    dataset = dataset_create(team=team, name="support/kill-test", actor=engineer)
    dataset_items_add(dataset=dataset, actor=engineer,
                      items=[{"id": f"q{i}", "inputs": {"question": f"Question {i}?"}} for i in range(ITEMS)])
    dataset.refresh_from_db()
    evaluator = evaluator_create(team=team, name="answers", kind="starts_with", params={"prefix": "Answer:"},
                                 actor=engineer)
    env = worker_env(settings)
    log = tmp_path / "workers.log"

    first, first_host = worker_start("evals-kill-a", env=env, log=log)
    second = None
    try:
        run = run_create(actor=engineer, dataset=dataset, evaluators=[evaluator], concurrency=4,
                         target_ref={"version_id": prompt.versions.get().pk})
        wait_for(lambda: EvalRun.objects.get(pk=run.pk).progress_done >= 12, 90, "the first worker's progress", log)
        worker_stop(first, signal.SIGKILL)
        killed_at = EvalRun.objects.get(pk=run.pk)
        assert killed_at.status == RunStatus.RUNNING and killed_at.progress_done < ITEMS
        assert EvalResult.objects.filter(run=run, status=UnitStatus.RUNNING,
                                         claimed_by=f"celery:{first_host}").exists()

        # The worker's heartbeat key expires; the beat job then sees its claims as dead and re-queues the run.
        wait_for(lambda: runner._worker_alive(f"celery:{first_host}") is False, 30, "the heartbeat to expire", log)
        assert runner.runs_resume_stalled(stall_seconds=0) == [run.pk]
        assert not EvalResult.objects.filter(run=run, status=UnitStatus.RUNNING).exists()
        from apps.evals.limiter import release_owner_slots

        assert release_owner_slots(f"celery:{first_host}") == 0  # its provider slots were freed with its claims

        second, _ = worker_start("evals-kill-b", env=env, log=log)
        run = wait_for(lambda: (r := EvalRun.objects.get(pk=run.pk)).status == RunStatus.FINISHED and r, 120,
                         "the run to finish on the second worker", log)
    finally:
        worker_stop(first, signal.SIGKILL)
        if second is not None:
            worker_stop(second)

    results = EvalResult.objects.filter(run=run)
    state = (results.count(), run.progress_total, run.progress_done, run.summary.get("passed"),
             UsageEvent.objects.filter(feature=f"eval-run-{run.pk}").count())
    assert results.count() == ITEMS == run.progress_total == run.progress_done, state
    assert set(results.values_list("status", flat=True)) == {UnitStatus.DONE}
    assert not results.values("item", "repetition").annotate(n=Count("id")).filter(n__gt=1).exists()
    failing = list(results.exclude(passed=True).values("attempts", "output", "scores"))
    # Every unit, the one redone after the kill included, is scored: the evaluator registry loads once under
    # a lock (a worker's threads used to race it and score a unit None: "59/60 passed").
    assert run.summary["units"] == ITEMS and run.summary["passed"] == ITEMS, (state, failing)
    calls = UsageEvent.objects.filter(feature=f"eval-run-{run.pk}").count()
    assert ITEMS <= calls <= ITEMS + 4, state  # at most the calls in flight when the worker died are made again
