"""Celery tasks of scorecards: thin wrappers over the refresh (beat every 4 minutes: the use cases with new data;
queued on demand with the use cases to recompute)."""

from celery import shared_task
from django.db import OperationalError

from apps.core.tasks import retry_policy
from apps.scorecards import services


@shared_task(name="apps.scorecards.tasks.scorecards_refresh_task", **retry_policy(OperationalError))
def scorecards_refresh_task(use_case_ids=None):
    if use_case_ids is None:
        return services.scorecards_refresh_due()
    return services.scorecards_refresh(use_case_ids=use_case_ids)
