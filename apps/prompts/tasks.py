"""Celery tasks of the prompt catalog: thin wrappers that call services."""

from celery import shared_task

from apps.core.tasks import retry_policy
from apps.prompts.webhooks import MAX_ATTEMPTS, DeliveryFailed, webhook_delivery_attempt


@shared_task(name="apps.prompts.tasks.webhook_deliver_task", bind=True,
             **retry_policy(DeliveryFailed, max_retries=MAX_ATTEMPTS - 1))
def webhook_deliver_task(self, delivery_id: int) -> None:
    webhook_delivery_attempt(delivery_id, final=self.request.retries >= self.max_retries)
