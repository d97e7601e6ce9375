"""Celery tasks of RAG (queue `indexing`, by module route): thin wrappers that call services."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

TRANSIENT = (OperationalError, InterfaceError)


@shared_task(autoretry_for=TRANSIENT, retry_backoff=True, retry_backoff_max=300, retry_jitter=True,
             max_retries=5)
def indexing_job_run_task(job_id: int) -> None:
    from apps.rag.indexing import indexing_job_run

    indexing_job_run(job_id)


@shared_task(autoretry_for=TRANSIENT, retry_backoff=True, retry_backoff_max=300, retry_jitter=True,
             max_retries=5)
def retrieval_eval_run_task(run_id: int) -> None:
    from apps.rag.evaluation import eval_run_execute

    eval_run_execute(run_id)


@shared_task
def indexing_sweep_stuck_task() -> dict:
    from apps.rag.services import indexing_jobs_requeue_stuck

    return indexing_jobs_requeue_stuck()
