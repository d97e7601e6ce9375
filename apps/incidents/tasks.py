"""Beat job of incidents: a thin wrapper over the mitigations' expiry sweep."""

from celery import shared_task

from apps.incidents import mitigations


@shared_task(name="apps.incidents.tasks.mitigations_expiry_sweep_task")
def mitigations_expiry_sweep_task():
    return mitigations.mitigations_expiry_sweep()
