"""Celery tasks of the costs app: thin wrappers over services. Scheduled ones are listed in portal/scheduled.py.

The top of costs: tasks import the modules they run; alerts and repricing queue tasks by name through
apps.core.tasks.task_queue (registered in apps/costs/hooks.py), never by importing this module.
"""

from celery import shared_task

from apps.core.request_context import acting_as
from apps.core.tasks import retry_policy
from apps.costs import alerts, budgets, repricing, rollups


@shared_task(name="apps.costs.tasks.budget_alert_notify_task")
def budget_alert_notify_task(alert_id: int) -> int:
    return alerts.budget_alert_notify(alert_id)


@shared_task(name="apps.costs.tasks.cost_anomaly_notify_task")
def cost_anomaly_notify_task(anomaly_id: int) -> int:
    return alerts.cost_anomaly_notify(anomaly_id)


@shared_task(name="apps.costs.tasks.budgets_check_task")
def budgets_check_task() -> dict:
    """Every 15 minutes: open new periods (the reset), missed threshold alerts, forecast alerts."""
    with acting_as(None):
        return alerts.budgets_check()


@shared_task(name="apps.costs.tasks.anomalies_detect_task")
def anomalies_detect_task() -> int:
    with acting_as(None):
        return len(alerts.anomalies_detect())


@shared_task(name="apps.costs.tasks.reservations_sweep_task")
def reservations_sweep_task() -> int:
    return budgets.reservations_sweep()


@shared_task(name="apps.costs.tasks.rollups_reconcile_task")
def rollups_reconcile_task() -> list[str]:
    """Nightly: rebuild each closed day not yet reconciled (catches up after downtime), prune hourly rows."""
    days = rollups.rollups_reconcile()
    rollups.hourly_rollups_prune()
    return [str(d) for d in days]


@shared_task(name="apps.costs.tasks.raw_events_purge_task")
def raw_events_purge_task() -> int:
    return rollups.raw_events_purge()


@shared_task(name="apps.costs.tasks.repricing_job_run_task", **retry_policy(OSError, max_retries=3))
def repricing_job_run_task(job_id: int) -> str:
    with acting_as(None):
        job = repricing.repricing_job_run(job_id)
    return "skipped" if job is None else job.status
