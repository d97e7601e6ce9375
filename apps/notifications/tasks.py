"""Celery tasks of the notifications app: thin wrappers over services."""

import smtplib

from celery import shared_task

from apps.notifications import services


@shared_task(name="apps.notifications.tasks.notification_email_task", autoretry_for=(smtplib.SMTPException, OSError),
             retry_backoff=True, retry_jitter=True, max_retries=5)
def notification_email_task(notification_id: int) -> bool:
    return services.notification_email_send(notification_id)
