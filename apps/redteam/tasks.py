"""Celery tasks of the red team (routed to the `llm` queue by portal/queues.py): thin wrappers over the runner
and the services."""

from celery import shared_task

from apps.core.request_context import acting_as
from apps.redteam import runner, services


@shared_task(name="apps.redteam.tasks.campaign_run_task", bind=True, acks_late=True)
def campaign_run_task(self, campaign_id: int) -> None:
    """Make the campaign's attacks (once), run them on one event loop, finish it."""
    with acting_as(None):
        if runner.campaign_start(campaign_id):
            runner.campaign_work(campaign_id, owner=f"celery:{self.request.hostname or 'unknown'}")


@shared_task(name="apps.redteam.tasks.campaigns_resume_stalled_task")
def campaigns_resume_stalled_task() -> None:
    with acting_as(None):
        services.campaigns_resume_stalled()
