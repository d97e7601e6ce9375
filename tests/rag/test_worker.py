"""Through a real Celery worker on the real broker: upload -> task on the indexing queue -> indexed; eval runs too."""

import time

import pytest

from apps.rag.models import Document, DocumentStatus, IndexingJob, JobStatus
from apps.rag.services import document_upload


def _wait(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_an_upload_is_indexed_by_the_worker_on_the_indexing_queue(celery_worker, collection, owner):
    from portal.celery import app

    assert app.amqp.router.route({}, "apps.rag.tasks.indexing_job_run_task")["queue"].name == "indexing"
    result = document_upload(collection=collection, name="note.md", content=b"# Note\n\nThe worker indexed this.",
                             user=owner)
    assert _wait(lambda: IndexingJob.objects.get(pk=result.job.pk).status == JobStatus.SUCCEEDED)
    doc = Document.objects.get(pk=result.created[0].pk)
    assert doc.status == DocumentStatus.INDEXED and doc.chunk_count == 1


def test_the_sweeper_task_requeues_a_stuck_job_and_the_worker_finishes_it(celery_worker, collection, owner):
    from datetime import timedelta

    from django.utils import timezone

    from apps.rag.services import DocumentInput, documents_upsert
    from apps.rag.tasks import indexing_sweep_stuck_task

    result = documents_upsert(collection=collection, items=[DocumentInput("a.txt", b"Stuck text.", "txt")],
                              queue_task=False)  # as if the message were lost
    IndexingJob.objects.filter(pk=result.job.pk).update(created_at=timezone.now() - timedelta(hours=1))
    indexing_sweep_stuck_task.delay()
    assert _wait(lambda: IndexingJob.objects.get(pk=result.job.pk).status == JobStatus.SUCCEEDED)


pytestmark = pytest.mark.django_db(transaction=True)
