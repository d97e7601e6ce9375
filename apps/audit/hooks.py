"""What audit registers at start-up (`AuditConfig.ready()` calls `register()`), in one place: the tasks its
services queue by name (apps.core.tasks.task_queue), since tasks.py sits on top of the services."""

from apps.audit import tasks
from apps.core.tasks import tasks_register


def register() -> None:
    tasks_register(tasks.audit_chain_verify_task)
