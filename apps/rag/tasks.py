"""Celery tasks of RAG (queue `indexing`, routed by name in portal/queues.py): thin wrappers that call services."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from apps.core.tasks import retry_policy
from apps.rag.evaluation import eval_run_execute
from apps.rag.indexing import indexing_job_run
from apps.rag.services import indexing_jobs_requeue_stuck

TRANSIENT = (OperationalError, InterfaceError)


@shared_task(name="apps.rag.tasks.indexing_job_run_task", **retry_policy(*TRANSIENT, backoff_max=300))
def indexing_job_run_task(job_id: int) -> None:
    indexing_job_run(job_id)


@shared_task(name="apps.rag.tasks.retrieval_eval_run_task", **retry_policy(*TRANSIENT, backoff_max=300))
def retrieval_eval_run_task(run_id: int) -> None:
    eval_run_execute(run_id)


@shared_task(name="apps.rag.tasks.indexing_sweep_stuck_task")
def indexing_sweep_stuck_task() -> dict:
    return indexing_jobs_requeue_stuck()
