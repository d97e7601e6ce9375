"""Celery tasks of scorecards: thin wrappers over the refresh (beat every 4 minutes; queued on demand)."""

from celery import shared_task
from django.db import OperationalError

from apps.core.tasks import retry_policy
from apps.scorecards import services


@shared_task(name="apps.scorecards.tasks.scorecards_refresh_task", **retry_policy(OperationalError))
def scorecards_refresh_task(use_case_ids=None):
    return services.scorecards_refresh(use_case_ids=use_case_ids)
