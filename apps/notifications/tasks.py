"""Celery tasks of the notifications app: thin wrappers over services."""

import smtplib

from celery import shared_task

from apps.core.tasks import retry_policy
from apps.notifications import services


@shared_task(name="apps.notifications.tasks.notification_email_task",
             **retry_policy(smtplib.SMTPException, OSError, max_retries=5))
def notification_email_task(notification_id: int) -> bool:
    return services.notification_email_send(notification_id)
