"""The background machinery end to end: a service queues on commit, a real worker runs it through Redis."""

import time

from apps.audit.models import ChainVerification
from apps.audit.services import audit_record, chain_verification_request
from apps.core.request_context import acting_as


def _wait_for(predicate, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def test_a_job_queued_by_a_service_is_run_by_a_real_worker(celery_worker, team):
    with acting_as(None):
        audit_record(action="test.event", obj=team)
        run = chain_verification_request(requested_by=None)
    finished = _wait_for(lambda: ChainVerification.objects.filter(pk=run.pk, status="done").first())
    assert finished is not None, ChainVerification.objects.get(pk=run.pk).status
    assert finished.intact is True
    assert finished.progress_done >= 1
