"""Beat job of the SLOs: a thin wrapper over the evaluation."""

from celery import shared_task

from apps.slos import evaluation


@shared_task(name="apps.slos.tasks.slos_evaluate_task")
def slos_evaluate_task() -> int:
    """Every minute: budgets, burn rates and alerts of every active SLO. Returns how many were evaluated."""
    return evaluation.slos_evaluate().evaluated
