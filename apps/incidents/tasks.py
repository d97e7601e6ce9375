"""Celery tasks of incidents, thin wrappers over services: the mitigations' expiry sweep; action-item reminders,
detection rules (beat) and paging webhook deliveries (queued after a commit, retried with the one policy)."""

from celery import shared_task

from apps.core.tasks import retry_policy
from apps.incidents import detection, mitigations, paging, postmortems


@shared_task(name="apps.incidents.tasks.mitigations_expiry_sweep_task")
def mitigations_expiry_sweep_task():
    return mitigations.mitigations_expiry_sweep()


@shared_task(name="apps.incidents.tasks.action_items_remind_task")
def action_items_remind_task():
    """Daily: owners of action items that fall due, and commanders of reviews past their due date."""
    return {"action_items": postmortems.action_items_remind().reminded, "reviews": postmortems.reviews_remind()}


@shared_task(name="apps.incidents.tasks.detection_rules_evaluate_task")
def detection_rules_evaluate_task():
    result = detection.rules_evaluate()
    return {"suggested": result.suggested, "opened": result.opened, "folded": result.folded}


@shared_task(name="apps.incidents.tasks.paging_deliver_task", bind=True,
             **retry_policy(paging.PagingFailed, max_retries=paging.MAX_ATTEMPTS - 1))
def paging_deliver_task(self, delivery_id: int) -> None:
    paging.paging_delivery_attempt(delivery_id, final=self.request.retries >= self.max_retries)
