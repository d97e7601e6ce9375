"""Live task success per use case, for the `task_success_drop` detection rule (ADR 0102).

Evals stores each piece of production feedback (POST /api/v1/feedback: thumbs, score or a correction, per use
case) as one `Feedback` row with its `success`. Reading those rows for a 7-day baseline every 30 seconds would
grow with the traffic, so the detection beat first **folds** the rows it has not seen into counts per use case
and bucket (`FeedbackCount`: 5-minute buckets for the recent window, hourly ones for the baseline), reading only
the feedback after a cursor (a primary-key range), then the rule reads a few count rows per use case.

The test: the recent window's success rate against the 7 days before it (whole hours), a one-sided
two-proportion z-test. A use case fires when both windows have at least `min_requests` feedbacks, the rate
dropped by at least `threshold` (absolute: 0.1 = 10 points) and the drop is significant at ALPHA. Feedback
without a use case or without an outcome is not counted.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Sum

from apps.costs.db import execute_fast
from apps.evals.models import Feedback
from apps.incidents.models import FEEDBACK_WINDOW_MAX_MINUTES, FeedbackCount, FeedbackFoldCursor

ALPHA = 0.01  # one-sided significance of the drop
BASELINE = timedelta(days=7)
SPANS = (5, 60)  # minutes: the recent window's buckets, the baseline's
RETENTION = {5: timedelta(minutes=FEEDBACK_WINDOW_MAX_MINUTES), 60: BASELINE + timedelta(days=2)}
FOLD_LAG = timedelta(seconds=5)  # leave rows this recent to the next tick (their transaction may still hide a lower id)
FOLD_BATCH = 20_000  # at most this many feedback rows per tick; the rest the next ones

_UPSERT = f"""
INSERT INTO {FeedbackCount._meta.db_table} AS t (span_minutes, start, use_case_id, total, good)
SELECT * FROM unnest(%s::smallint[], %s::timestamptz[], %s::bigint[], %s::int[], %s::int[])
ON CONFLICT ON CONSTRAINT {FeedbackCount._meta.constraints[0].name} DO UPDATE SET
    total = t.total + EXCLUDED.total, good = t.good + EXCLUDED.good
"""


def bucket_start(at: datetime, span_minutes: int) -> datetime:
    at = at.replace(second=0, microsecond=0)
    return at.replace(minute=0) if span_minutes == 60 else at.replace(minute=at.minute - at.minute % span_minutes)


@transaction.atomic
def feedback_fold(now: datetime) -> int:
    """Add the feedback rows after the cursor to the counts (idempotent: the cursor moves in the same transaction;
    concurrent folds wait on its row lock). Rows younger than FOLD_LAG wait for the next tick: ids are handed out
    before commit, so a row this recent may still have a lower id pending. Returns how many rows were folded."""
    cursor = FeedbackFoldCursor.objects.select_for_update().filter(pk=1).first()
    if cursor is None:  # the migration creates it; a flushed test database may not have it
        cursor, _ = FeedbackFoldCursor.objects.get_or_create(pk=1)
        cursor = FeedbackFoldCursor.objects.select_for_update().get(pk=1)
    rows = Feedback.objects.filter(pk__gt=cursor.last_id).order_by("pk") \
        .values_list("pk", "created_at", "use_case_id", "success")[:FOLD_BATCH]
    counts: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    last_id, folded = cursor.last_id, 0
    for pk, created_at, use_case_id, success in rows:
        if created_at > now - FOLD_LAG:
            break  # stop at the first young row: the cursor must not pass a row not yet folded
        last_id, folded = pk, folded + 1
        if use_case_id is None or success is None:
            continue
        for span in SPANS:
            total_good = counts[(span, bucket_start(created_at, span), use_case_id)]
            total_good[0] += 1
            total_good[1] += int(success)
    if counts:
        ordered = sorted(counts.items())  # key order: concurrent upserts never deadlock
        execute_fast(_UPSERT, [[k[0] for k, _ in ordered], [k[1] for k, _ in ordered], [k[2] for k, _ in ordered],
                               [v[0] for _, v in ordered], [v[1] for _, v in ordered]])
    for span, keep in RETENTION.items():
        FeedbackCount.objects.filter(span_minutes=span, start__lt=now - keep).delete()
    if last_id != cursor.last_id:
        FeedbackFoldCursor.objects.filter(pk=1).update(last_id=last_id, folded_at=now)
    return folded


# -- the test ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Drop:
    use_case_id: int
    base_good: int
    base_total: int
    recent_good: int
    recent_total: int
    z: float
    p_value: float

    @property
    def base_rate(self) -> float:
        return self.base_good / self.base_total

    @property
    def recent_rate(self) -> float:
        return self.recent_good / self.recent_total


def drop_test(base_good: int, base_total: int, recent_good: int, recent_total: int) -> tuple[float, float]:
    """(z, one-sided p-value) of "the recent success rate is lower than the baseline's" (pooled two-proportion
    z-test). Pure. No drop, or no variation at all, is (0, 1)."""
    if not base_total or not recent_total:
        return 0.0, 1.0
    pooled = (base_good + recent_good) / (base_total + recent_total)
    se = math.sqrt(pooled * (1 - pooled) * (1 / base_total + 1 / recent_total))
    diff = base_good / base_total - recent_good / recent_total
    if se == 0 or diff <= 0:
        return 0.0, 1.0
    z = diff / se
    return z, 0.5 * math.erfc(z / math.sqrt(2))


def is_drop(base_good: int, base_total: int, recent_good: int, recent_total: int, *, min_total: int,
            min_drop: float) -> bool:
    if min(base_total, recent_total) < max(1, min_total):
        return False
    if base_good / base_total - recent_good / recent_total < min_drop:
        return False
    return drop_test(base_good, base_total, recent_good, recent_total)[1] < ALPHA


def _sums(qs) -> dict[int, tuple[int, int]]:
    return {r["use_case_id"]: (r["good"], r["total"])
            for r in qs.values("use_case_id").annotate(good=Sum("good"), total=Sum("total")).order_by()}


def task_success_drops(*, now: datetime, window_minutes: int, min_total: int, min_drop: float,
                       use_case_ids=None) -> list[Drop]:
    """The use cases whose live task success in the last `window_minutes` dropped against the 7 days before.
    Reads the 5-minute counts of the window, then the hourly baseline of only the use cases with enough
    feedback in it."""
    start = bucket_start(now - timedelta(minutes=window_minutes), 5)
    recent_qs = FeedbackCount.objects.filter(span_minutes=5, start__gte=start, start__lte=now)
    if use_case_ids is not None:
        recent_qs = recent_qs.filter(use_case_id__in=use_case_ids)
    recent = {uc: gt for uc, gt in _sums(recent_qs).items() if gt[1] >= max(1, min_total)}
    if not recent:
        return []
    base_end = bucket_start(start, 60)  # whole hours before the window: no feedback counts twice
    base = _sums(FeedbackCount.objects.filter(span_minutes=60, start__gte=base_end - BASELINE, start__lt=base_end,
                                              use_case_id__in=list(recent)))
    out = []
    for uc, (recent_good, recent_total) in sorted(recent.items()):
        base_good, base_total = base.get(uc, (0, 0))
        if is_drop(base_good, base_total, recent_good, recent_total, min_total=min_total, min_drop=min_drop):
            z, p = drop_test(base_good, base_total, recent_good, recent_total)
            out.append(Drop(uc, base_good, base_total, recent_good, recent_total, z, p))
    return out
