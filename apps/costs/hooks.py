"""What costs registers at start-up (`CostsConfig.ready()` calls `register()`), in one place.

- accounts' team-page counters: what a team owns in costs;
- core's task registry: the tasks that costs' lower modules queue (alerts, repricing) without importing
  tasks.py, which sits on top of them;
- budget signals: a saved or deleted budget moves the capped-budgets stamp (selectors.capped_budgets), so every
  gateway process reads the hard caps again.
"""

from django.db.models import Sum
from django.db.models.signals import post_delete, post_save

from apps.accounts.ownership import register_owned_counter
from apps.core.tasks import tasks_register
from apps.costs import selectors, tasks
from apps.costs.models import Budget, UsageRollup


def _usage_events(team) -> int:
    # from the daily rollups: no count over the raw ledger
    return UsageRollup.objects.filter(granularity="dayx", team=team).aggregate(n=Sum("requests"))["n"] or 0


def _budget_changed(sender, **kwargs) -> None:
    selectors.capped_budgets_changed()


def register() -> None:
    post_save.connect(_budget_changed, sender=Budget, dispatch_uid="costs-capped-budgets-save")
    post_delete.connect(_budget_changed, sender=Budget, dispatch_uid="costs-capped-budgets-delete")
    register_owned_counter("Usage events (all time)", _usage_events)
    register_owned_counter("Budgets", lambda team: team.budgets.count())
    tasks_register(tasks.budget_alert_notify_task, tasks.cost_anomaly_notify_task, tasks.repricing_job_run_task)
