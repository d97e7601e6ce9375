"""The base layer's one model shape: `JobRow`, an abstract row for a long job that a Celery task updates and a
page polls (ADR 0094). Abstract, so it adds no table: each app's job keeps its own table and columns."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

QUEUED = "queued"
RUNNING = "running"
FAILED = "failed"


class JobRow(models.Model):
    """A job's progress and outcome. Each subclass declares its own `status` field, because the apps name
    the end of a job differently (`finished`, `succeeded`, `done`) and stored values never change; every
    status set starts `queued` → `running` and may end `failed`. A subclass whose job has more active
    statuses than queued and running lists them in `active_statuses`."""

    active_statuses: tuple[str, ...] = (QUEUED, RUNNING)

    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_active(self) -> bool:
        return self.status in self.active_statuses

    @property
    def percent(self) -> int:
        """Whole percent done, rounded down so a bar shows 100 only when every unit is done; 0 with nothing
        to do; never above 100 when a counter overshoots its total."""
        if not self.progress_total:
            return 0
        return min(100, 100 * self.progress_done // self.progress_total)
