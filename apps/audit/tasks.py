"""Celery tasks of the audit app: thin wrappers over services."""

from celery import shared_task

from apps.audit import services


@shared_task(name="apps.audit.tasks.audit_chain_verify_task")
def audit_chain_verify_task(verification_id: int) -> str:
    run = services.chain_verification_run(verification_id)
    return "skipped" if run is None else ("intact" if run.intact else f"broken at #{run.first_broken_id}")


@shared_task(name="apps.audit.tasks.audit_chain_verify_scheduled")
def audit_chain_verify_scheduled() -> str:
    """For the beat schedule (nightly): queue a run; the run itself is audit_chain_verify_task."""
    run = services.chain_verification_request(requested_by=None)
    return f"verification #{run.pk} {run.status}"
