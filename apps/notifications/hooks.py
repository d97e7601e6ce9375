"""What notifications registers at start-up (`NotificationsConfig.ready()` calls `register()`), in one place: the tasks its
services queue by name (apps.core.tasks.task_queue), since tasks.py sits on top of the services."""

from apps.core.tasks import tasks_register
from apps.notifications import tasks


def register() -> None:
    tasks_register(tasks.notification_email_task)
