"""Celery tasks of the costs app: thin wrappers over services. Scheduled ones are listed in portal/scheduled.py."""

from celery import shared_task

from apps.core.request_context import acting_as
from apps.core.tasks import retry_policy


@shared_task(name="apps.costs.tasks.budget_alert_notify_task")
def budget_alert_notify_task(alert_id: int) -> int:
    from apps.costs.alerts import budget_alert_notify

    return budget_alert_notify(alert_id)


@shared_task(name="apps.costs.tasks.cost_anomaly_notify_task")
def cost_anomaly_notify_task(anomaly_id: int) -> int:
    from apps.costs.alerts import cost_anomaly_notify

    return cost_anomaly_notify(anomaly_id)


@shared_task(name="apps.costs.tasks.budgets_check_task")
def budgets_check_task() -> dict:
    """Every 15 minutes: open new periods (the reset), missed threshold alerts, forecast alerts."""
    from apps.costs.alerts import budgets_check

    with acting_as(None):
        return budgets_check()


@shared_task(name="apps.costs.tasks.anomalies_detect_task")
def anomalies_detect_task() -> int:
    from apps.costs.alerts import anomalies_detect

    with acting_as(None):
        return len(anomalies_detect())


@shared_task(name="apps.costs.tasks.reservations_sweep_task")
def reservations_sweep_task() -> int:
    from apps.costs.budgets import reservations_sweep

    return reservations_sweep()


@shared_task(name="apps.costs.tasks.rollups_reconcile_task")
def rollups_reconcile_task() -> list[str]:
    """Nightly: rebuild each closed day not yet reconciled (catches up after downtime), prune hourly rows."""
    from apps.costs.rollups import hourly_rollups_prune, rollups_reconcile

    days = rollups_reconcile()
    hourly_rollups_prune()
    return [str(d) for d in days]


@shared_task(name="apps.costs.tasks.raw_events_purge_task")
def raw_events_purge_task() -> int:
    from apps.costs.rollups import raw_events_purge

    return raw_events_purge()


@shared_task(name="apps.costs.tasks.repricing_job_run_task", **retry_policy(OSError, max_retries=3))
def repricing_job_run_task(job_id: int) -> str:
    from apps.costs.repricing import repricing_job_run

    with acting_as(None):
        job = repricing_job_run(job_id)
    return "skipped" if job is None else job.status
