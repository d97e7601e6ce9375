"""Beat jobs of the gateway: thin wrappers over services."""

from celery import shared_task

from apps.gateway import services


@shared_task(name="apps.gateway.tasks.gateway_bodies_sweep_task")
def gateway_bodies_sweep_task() -> int:
    """Nightly: delete sampled bodies past GATEWAY_BODY_RETENTION_DAYS."""
    return services.gateway_bodies_sweep()
