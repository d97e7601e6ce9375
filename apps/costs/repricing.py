"""Re-pricing: after a price correction, recompute the cost of past events from the catalog, then rollups
and budget counters. A Celery job, one UTC day per transaction, resumable (progress_done = days finished)
and idempotent (running a day twice gives the same numbers).

Events are matched to a model by their `model` name or by the price row they were priced with; the portal's
own calls record the catalog label, so a model whose price name differs is re-priced through its price row.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.tasks import task_queue
from apps.costs import rollups
from apps.costs.budgets import counters_recount
from apps.costs.models import JobStatus, RepricingJob

log = logging.getLogger(__name__)
MAX_DAYS = 800

_REPRICE_DAY = """
UPDATE costs_usageevent e
SET price_id = np.id,
    cost = CASE
        WHEN np.id IS NULL THEN CASE WHEN e.input_tokens = 0 AND e.output_tokens = 0 THEN 0 ELSE NULL END
        ELSE round(((e.input_tokens - LEAST(e.cached_input_tokens, e.input_tokens)) * np.input_per_mtok
                    + LEAST(e.cached_input_tokens, e.input_tokens) * coalesce(np.cached_input_per_mtok, np.input_per_mtok)
                    + (e.output_tokens - LEAST(e.reasoning_tokens, e.output_tokens)) * np.output_per_mtok
                    + LEAST(e.reasoning_tokens, e.output_tokens) * coalesce(np.reasoning_per_mtok, np.output_per_mtok)
                   ) / 1000000, 8)
    END
FROM (
    SELECT e2.id, (
        SELECT p.id FROM costs_price p
        WHERE p.model_name = coalesce(op.model_name, e2.model)
          AND p.valid_from <= e2.occurred_at AND (p.valid_to IS NULL OR p.valid_to > e2.occurred_at)
          AND (p.provider = e2.provider OR p.provider = '')
        ORDER BY (p.provider = e2.provider) DESC LIMIT 1
    ) AS new_price_id
    FROM costs_usageevent e2 LEFT JOIN costs_price op ON op.id = e2.price_id
    WHERE e2.occurred_at >= %(start)s AND e2.occurred_at < %(end)s
      AND (%(model)s = '' OR e2.model = %(model)s OR op.model_name = %(model)s)
) x LEFT JOIN costs_price np ON np.id = x.new_price_id
WHERE e.id = x.id
"""


def _day(at: datetime) -> datetime:
    return rollups.day_start(at)


@transaction.atomic
def repricing_job_request(*, model_name: str = "", start: datetime, end: datetime, reason: str = "",
                          user=None) -> RepricingJob:
    """Queue a re-pricing of [start, end) (whole UTC days). Refused where raw events were already purged."""
    if end <= start:
        raise ValidationError({"end": "The end must be after the start."})
    first, last = _day(start), _day(end - timedelta(microseconds=1)) + timedelta(days=1)
    days = (last - first).days
    if days > MAX_DAYS:
        raise ValidationError({"start": f"Re-price at most {MAX_DAYS} days at a time."})
    kept = rollups.raw_kept_from()
    if kept is not None and first < kept:
        raise ValidationError({"start": f"Raw events before {kept:%Y-%m-%d} were deleted by the retention policy; "
                                        "their rollups cannot be re-priced."})
    job = RepricingJob.objects.create(model_name=model_name.strip(), start=first, end=last, reason=reason[:300],
                                      progress_total=days,
                                      requested_by=user if getattr(user, "is_authenticated", False) else None)
    audit_record(action="price.reprice.request", obj=job, object_repr=str(job), actor=user,
                 changes={"model": job.model_name, "start": first, "end": last, "reason": reason})

    def enqueue():
        try:
            task_queue("apps.costs.tasks.repricing_job_run_task", job.pk)
        except Exception as exc:  # noqa: BLE001 - show a broker outage on the page, not as a 500
            log.exception("could not queue re-pricing job %s", job.pk)
            RepricingJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
                status=JobStatus.FAILED, error=f"Could not queue the job ({type(exc).__name__}): is the broker up?")

    transaction.on_commit(enqueue)
    return job


def repricing_job_run(job_id: int) -> RepricingJob | None:
    """Run (or resume) a job: claim it, then one day per transaction from where it stopped."""
    claimed = RepricingJob.objects.filter(pk=job_id, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
        status=JobStatus.RUNNING, started_at=timezone.now())
    if not claimed:
        return None
    job = RepricingJob.objects.get(pk=job_id)
    try:
        for offset in range(job.progress_done, job.progress_total):
            day = job.start + timedelta(days=offset)
            with transaction.atomic():
                rollups.lock_exclusive()
                with connection.cursor() as cursor:
                    cursor.execute(_REPRICE_DAY, {"start": day, "end": day + timedelta(days=1),
                                                  "model": job.model_name})
                    count = cursor.rowcount
                rollups.rollups_rebuild_day(day.astimezone(UTC).date())
                RepricingJob.objects.filter(pk=job.pk).update(progress_done=offset + 1,
                                                              events_repriced=job.events_repriced + count)
                job.events_repriced += count
        counters_recount()
    except Exception as exc:
        log.exception("re-pricing job %s failed", job.pk)
        RepricingJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, finished_at=timezone.now(),
                                                      error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    with transaction.atomic():
        RepricingJob.objects.filter(pk=job.pk).update(status=JobStatus.DONE, finished_at=timezone.now())
        job.refresh_from_db()
        audit_record(action="price.reprice.done", obj=job, object_repr=str(job), actor=job.requested_by,
                     changes={"events_repriced": job.events_repriced, "days": job.progress_total})
    return job
