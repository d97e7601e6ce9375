"""Live task success and groundedness per use case, for the `task_success_drop` (ADR 0102) and `groundedness_drop`
(ADR 0121) detection rules.

Evals stores each piece of production feedback (POST /api/v1/feedback: thumbs, score or a correction, per use
case) as one `Feedback` row with its `success`. Reading those rows for a 7-day baseline every 30 seconds would
grow with the traffic, so the detection beat first **folds** the rows it has not seen into counts per use case
and bucket (`FeedbackCount`: 5-minute buckets for the recent window, hourly ones for the baseline), reading only
the feedback after a cursor (a primary-key range), then the rule reads a few count rows per use case.

The test: the recent window's success rate against the 7 days before it (whole hours), a one-sided
two-proportion z-test. A use case fires when both windows have at least `min_requests` feedbacks, the rate
dropped by at least `threshold` (absolute: 0.1 = 10 points) and the drop is significant at ALPHA. Feedback
without a use case or without an outcome is not counted.

Groundedness (ADR 0121): a RAG answer's score rides on its usage event (costs' `UsageEvent.groundedness`, queued
with the answer's record) and a product may send its own on the feedback (`Feedback.groundedness`). The same beat
folds both into `GroundednessCount` (count, sum, sum of squares per use case and bucket): the feedback in the
feedback fold, the scored usage events after their own cursor (`ledger_fold`, through the ledger's partial index
on scored rows). A usage event without a use case counts for each use case linked to its collection (reviews'
`UseCaseCollection`). The test: the window's mean against the 7 days before, Welch's one-sided t-test.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Sum

from apps.costs.db import execute_fast
from apps.costs.models import UsageEvent
from apps.evals.models import Feedback
from apps.incidents.models import (
    FEEDBACK_WINDOW_MAX_MINUTES,
    FeedbackCount,
    FeedbackFoldCursor,
    GroundednessCount,
    LedgerFoldCursor,
)
from apps.reviews.models import UseCaseCollection

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
_GROUNDEDNESS_UPSERT = f"""
INSERT INTO {GroundednessCount._meta.db_table} AS t (span_minutes, start, use_case_id, answers, total, total_sq)
SELECT * FROM unnest(%s::smallint[], %s::timestamptz[], %s::bigint[], %s::int[], %s::float8[], %s::float8[])
ON CONFLICT ON CONSTRAINT {GroundednessCount._meta.constraints[0].name} DO UPDATE SET
    answers = t.answers + EXCLUDED.answers, total = t.total + EXCLUDED.total, total_sq = t.total_sq + EXCLUDED.total_sq
"""


def bucket_start(at: datetime, span_minutes: int) -> datetime:
    at = at.replace(second=0, microsecond=0)
    return at.replace(minute=0) if span_minutes == 60 else at.replace(minute=at.minute - at.minute % span_minutes)


def _locked_cursor(model):
    cursor = model.objects.select_for_update().filter(pk=1).first()
    if cursor is None:  # the migration creates it; a flushed test database may not have it
        model.objects.get_or_create(pk=1)
        cursor = model.objects.select_for_update().get(pk=1)
    return cursor


def _upsert(sql: str, counts: dict) -> None:
    """One statement for every (span, start, use case) → [counts...] of the batch."""
    if counts:
        ordered = sorted(counts.items())  # key order: concurrent upserts never deadlock
        width = len(ordered[0][1])
        execute_fast(sql, [[k[i] for k, _ in ordered] for i in range(3)] +
                     [[v[i] for _, v in ordered] for i in range(width)])


def _add_score(moments: dict, at: datetime, use_case_id: int, score: float) -> None:
    for span in SPANS:
        bucket = moments[(span, bucket_start(at, span), use_case_id)]
        bucket[0] += 1
        bucket[1] += score
        bucket[2] += score * score


def _prune(model, now: datetime) -> None:
    for span, keep in RETENTION.items():
        model.objects.filter(span_minutes=span, start__lt=now - keep).delete()


@transaction.atomic
def feedback_fold(now: datetime) -> int:
    """Add the feedback rows after the cursor to the counts: outcomes to FeedbackCount, products' groundedness
    scores to GroundednessCount (idempotent: the cursor moves in the same transaction; concurrent folds wait on
    its row lock). Rows younger than FOLD_LAG wait for the next tick: ids are handed out before commit, so a row
    this recent may still have a lower id pending. Returns how many rows were folded."""
    cursor = _locked_cursor(FeedbackFoldCursor)
    rows = Feedback.objects.filter(pk__gt=cursor.last_id).order_by("pk") \
        .values_list("pk", "created_at", "use_case_id", "success", "groundedness")[:FOLD_BATCH]
    counts: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    moments: dict[tuple, list] = defaultdict(lambda: [0, 0.0, 0.0])
    last_id, folded = cursor.last_id, 0
    for pk, created_at, use_case_id, success, groundedness in rows:
        if created_at > now - FOLD_LAG:
            break  # stop at the first young row: the cursor must not pass a row not yet folded
        last_id, folded = pk, folded + 1
        if use_case_id is None:
            continue
        if groundedness is not None:
            _add_score(moments, created_at, use_case_id, groundedness)
        if success is None:
            continue
        for span in SPANS:
            total_good = counts[(span, bucket_start(created_at, span), use_case_id)]
            total_good[0] += 1
            total_good[1] += int(success)
    _upsert(_UPSERT, counts)
    _upsert(_GROUNDEDNESS_UPSERT, moments)
    _prune(FeedbackCount, now)
    _prune(GroundednessCount, now)
    if last_id != cursor.last_id:
        FeedbackFoldCursor.objects.filter(pk=1).update(last_id=last_id, folded_at=now)
    return folded


@transaction.atomic
def ledger_fold(now: datetime) -> int:
    """Add the scored usage events after the cursor (RAG answers' groundedness, ADR 0121) to GroundednessCount,
    bucketed by when the answer was made. Reads only scored rows (the ledger's partial index on them); stops at
    the first one ingested less than FOLD_LAG ago, like the feedback fold. An event without a use case counts
    for each use case linked to its collection; one with neither is passed over. Returns how many were read."""
    cursor = _locked_cursor(LedgerFoldCursor)
    rows = list(UsageEvent.objects.filter(pk__gt=cursor.last_id, groundedness__isnull=False).order_by("pk")
                .values_list("pk", "ingested_at", "occurred_at", "use_case_id", "collection_id",
                             "groundedness")[:FOLD_BATCH])
    young = next((i for i, row in enumerate(rows) if row[1] > now - FOLD_LAG), len(rows))
    rows = rows[:young]  # the cursor must not pass a row not yet folded
    collections = {row[4] for row in rows if row[3] is None and row[4] is not None}
    links = UseCaseCollection.objects.filter(collection_id__in=collections).values_list("collection_id",
                                                                                        "use_case_id").order_by()
    linked: dict[int, list[int]] = defaultdict(list)
    for collection_id, use_case_id in (links if collections else ()):
        linked[collection_id].append(use_case_id)
    moments: dict[tuple, list] = defaultdict(lambda: [0, 0.0, 0.0])
    for _pk, _ingested, occurred_at, use_case_id, collection_id, groundedness in rows:
        for uc in [use_case_id] if use_case_id is not None else linked.get(collection_id, ()):
            _add_score(moments, occurred_at, uc, groundedness)
    _upsert(_GROUNDEDNESS_UPSERT, moments)  # the feedback fold, run before it each tick, prunes the old buckets
    if rows:
        LedgerFoldCursor.objects.filter(pk=1).update(last_id=rows[-1][0], folded_at=now)
    return len(rows)


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


# -- groundedness: the mean against the baseline's (ADR 0121) -----------------------------------------------------
@dataclass(frozen=True)
class Moments:
    """n scores, their sum and the sum of their squares: a bucket's, or any range's (they add)."""

    n: int
    total: float
    total_sq: float

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """The sample variance (n - 1); 0 below two scores. Clipped at 0 (float rounding of a constant series)."""
        return max(0.0, (self.total_sq - self.total * self.total / self.n) / (self.n - 1)) if self.n > 1 else 0.0


@dataclass(frozen=True)
class GroundednessDrop:
    use_case_id: int
    base: Moments
    recent: Moments
    t: float
    df: float
    p_value: float


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 3e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularised incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom (t ≥ 0). Pure."""
    return 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))


def mean_drop_test(base: Moments, recent: Moments) -> tuple[float, float, float]:
    """(t, Welch–Satterthwaite df, one-sided p-value) of "the recent mean is lower than the baseline's" (Welch's
    t-test: the two windows' variances are not assumed equal). Pure. No drop, or fewer than two scores on a side,
    is (0, 0, 1); a drop between two constant series is certain (inf, 0, 0)."""
    if base.n < 2 or recent.n < 2:
        return 0.0, 0.0, 1.0
    diff = base.mean - recent.mean
    vb, vr = base.variance / base.n, recent.variance / recent.n
    if diff <= 0:
        return 0.0, 0.0, 1.0
    if vb + vr == 0:
        return math.inf, 0.0, 0.0
    t = diff / math.sqrt(vb + vr)
    df = (vb + vr) ** 2 / (vb * vb / (base.n - 1) + vr * vr / (recent.n - 1))
    return t, df, t_sf(t, df)


def is_mean_drop(base: Moments, recent: Moments, *, min_total: int, min_drop: float) -> bool:
    if min(base.n, recent.n) < max(2, min_total):
        return False
    if base.mean - recent.mean < min_drop:
        return False
    return mean_drop_test(base, recent)[2] < ALPHA


def _moments(qs) -> dict[int, Moments]:
    return {r["use_case_id"]: Moments(r["n"], r["s"], r["sq"]) for r in
            qs.values("use_case_id").annotate(n=Sum("answers"), s=Sum("total"), sq=Sum("total_sq")).order_by()}


def groundedness_drops(*, now: datetime, window_minutes: int, min_total: int, min_drop: float,
                       use_case_ids=None) -> list[GroundednessDrop]:
    """The use cases whose live mean groundedness in the last `window_minutes` dropped against the 7 days before
    (whole hours). Reads the 5-minute counts of the window, then the hourly baseline of only the use cases with
    enough scored answers in it."""
    start = bucket_start(now - timedelta(minutes=window_minutes), 5)
    recent_qs = GroundednessCount.objects.filter(span_minutes=5, start__gte=start, start__lte=now)
    if use_case_ids is not None:
        recent_qs = recent_qs.filter(use_case_id__in=use_case_ids)
    recent = {uc: m for uc, m in _moments(recent_qs).items() if m.n >= max(2, min_total)}
    if not recent:
        return []
    base_end = bucket_start(start, 60)  # whole hours before the window: no answer counts twice
    base = _moments(GroundednessCount.objects.filter(span_minutes=60, start__gte=base_end - BASELINE,
                                                     start__lt=base_end, use_case_id__in=list(recent)))
    out = []
    for uc, recent_moments in sorted(recent.items()):
        base_moments = base.get(uc, Moments(0, 0.0, 0.0))
        if is_mean_drop(base_moments, recent_moments, min_total=min_total, min_drop=min_drop):
            t, df, p = mean_drop_test(base_moments, recent_moments)
            out.append(GroundednessDrop(uc, base_moments, recent_moments, t, df, p))
    return out
