"""Celery tasks of evals (routed to the `llm` queue by portal/queues.py): thin wrappers over runner/services."""

from celery import shared_task

from apps.core.request_context import acting_as
from apps.evals import runner
from apps.evals.models import EvaluatorDefinition
from apps.evals.services import judge_calibrate


@shared_task(name="apps.evals.tasks.eval_run_start_task", acks_late=True)
def eval_run_start_task(run_id: int) -> None:
    """Coordinator: make the run's units, then fan the work out to worker tasks."""
    with acting_as(None):
        if runner.run_start(run_id):
            runner.enqueue_work(run_id)


@shared_task(name="apps.evals.tasks.eval_run_work_task", bind=True, acks_late=True)
def eval_run_work_task(self, run_id: int, threads: int | None = None) -> None:
    with acting_as(None):
        runner.run_work(run_id, threads=threads, owner=f"celery:{self.request.hostname or 'unknown'}")


@shared_task(name="apps.evals.tasks.eval_runs_resume_stalled_task")
def eval_runs_resume_stalled_task() -> None:
    with acting_as(None):
        runner.runs_resume_stalled()


@shared_task(name="apps.evals.tasks.judge_calibrate_task")
def judge_calibrate_task(evaluator_id: int) -> None:
    definition = EvaluatorDefinition.objects.filter(pk=evaluator_id).first()
    if definition is None:
        return
    with acting_as(None):
        judge_calibrate(evaluator=definition)
