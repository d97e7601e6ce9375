"""Beat jobs of the gateway: thin wrappers over services."""

from celery import shared_task

from apps.gateway import services


@shared_task(name="apps.gateway.tasks.gateway_keys_expiry_notify_task")
def gateway_keys_expiry_notify_task():
    return services.gateway_keys_expiry_notify()
