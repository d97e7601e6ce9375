"""Queue evals' Celery tasks by name. tasks.py calls the runner and the services, so they cannot import it back
(an import circle). The names are the tasks' `name=` (tests/evals/test_queue.py holds them equal) and the
routes in portal/queues.py match them."""

from __future__ import annotations

from celery import current_app

RUN_START = "apps.evals.tasks.eval_run_start_task"
RUN_WORK = "apps.evals.tasks.eval_run_work_task"
JUDGE_CALIBRATE = "apps.evals.tasks.judge_calibrate_task"


def run_start_enqueue(run_id: int) -> None:
    current_app.send_task(RUN_START, args=[run_id])


def run_work_enqueue(run_id: int, threads: int) -> None:
    current_app.send_task(RUN_WORK, args=[run_id, threads])


def judge_calibrate_enqueue(evaluator_id: int) -> None:
    current_app.send_task(JUDGE_CALIBRATE, args=[evaluator_id])
