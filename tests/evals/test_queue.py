"""The runner and the services queue evals' tasks by name (apps/evals/queue.py): each name is a real task's."""

from apps.evals import queue, tasks
from portal.celery import app


def test_the_queued_names_are_the_tasks_names_and_route_to_the_llm_queue():
    for name, task in [(queue.RUN_START, tasks.eval_run_start_task), (queue.RUN_WORK, tasks.eval_run_work_task),
                       (queue.JUDGE_CALIBRATE, tasks.judge_calibrate_task)]:
        assert name == task.name
        assert app.amqp.router.route({}, name)["queue"].name == "llm"
