"""Beat jobs of the gateway: thin wrappers over services."""

from celery import shared_task

from apps.gateway import services


@shared_task(name="apps.gateway.tasks.gateway_bodies_sweep_task")
def gateway_bodies_sweep_task() -> int:
    """Nightly: delete sampled bodies past GATEWAY_BODY_RETENTION_DAYS."""
    return services.gateway_bodies_sweep()


@shared_task(name="apps.gateway.tasks.gateway_keys_expiry_notify_task")
def gateway_keys_expiry_notify_task() -> int:
    """Daily: notices before gateway keys expire."""
    return services.gateway_keys_expiry_notify()


@shared_task(name="apps.gateway.tasks.gateway_sli_prune_task")
def gateway_sli_prune_task() -> int:
    """Hourly: delete SLI minute and hour counts past their retention."""
    return services.gateway_sli_prune()
