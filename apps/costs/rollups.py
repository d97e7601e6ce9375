"""Rollups: sums of the ledger per day (kept) and per hour (recent days), plus token histograms.

Maintained in the ingest transaction from the rows actually inserted (`rollup_deltas` + `rollups_apply`),
and rebuilt from raw events for a window (`rollups_rebuild`) after re-pricing or to reconcile: idempotent,
and refused where raw events have been purged (rollups outlive raw events).

Writers hold ROLLUP_LOCK: ingestion shares it, a rebuild takes it alone, so a rebuild never races an insert.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from apps.costs import conf, db
from apps.costs.models import CallStatus, LedgerState, Outcome

ROLLUP_LOCK = 7_301_101  # pg advisory lock key: shared by ingest, exclusive for rebuilds and budget recounts
BINS_PER_DOUBLING = 4
MAX_BIN = 100
RAW_KEPT_FROM = "raw_kept_from"
RECONCILED_THROUGH = "reconciled_through"

# use_case_id last (migration 0014): the cost per use case and the response cache's saving per use case read it.
DIMENSIONS = ("team_id", "feature", "tenant", "model", "provider", "source", "prompt_name", "prompt_version",
              "use_case_id")
MEASURES = ("requests", "errors", "refused", "input_tokens", "output_tokens", "cached_input_tokens",
            "reasoning_tokens", "cost", "unpriced", "cache_savings", "latency_ms_sum", "successes", "failures",
            "cache_hits", "cache_hit_savings")
_DECIMAL_MEASURES = {"cost", "cache_savings", "cache_hit_savings"}
_ROLLUP_TYPES = ["text", "timestamptz", "bigint", "text", "text", "text", "text", "text", "text", "int", "bigint",
                 "bigint", "bigint", "bigint", "bigint", "bigint", "bigint", "bigint", "numeric", "bigint", "numeric",
                 "bigint", "bigint", "bigint", "bigint", "numeric"]


def token_bin(tokens: int) -> int:
    """0 for no tokens, else 1 + floor(4·log2(tokens)): four bins per doubling, ±9% around a bin's middle."""
    if tokens <= 0:
        return 0
    return min(MAX_BIN, 1 + int(math.floor(BINS_PER_DOUBLING * math.log2(tokens) + 1e-9)))


def bin_bounds(b: int) -> tuple[float, float]:
    """[low, high) token counts of a bin."""
    if b <= 0:
        return 0.0, 1.0
    return 2 ** ((b - 1) / BINS_PER_DOUBLING), 2 ** (b / BINS_PER_DOUBLING)


def percentile_from_bins(counts: dict[int, int], q: float) -> float | None:
    """The q-quantile (0..1) of a binned distribution, interpolated geometrically inside its bin."""
    total = sum(counts.values())
    if not total:
        return None
    target = q * total
    seen = 0
    for b in sorted(counts):
        n = counts[b]
        if seen + n >= target and n:
            low, high = bin_bounds(b)
            frac = (target - seen) / n
            if b == 0:
                return 0.0
            return low * (high / low) ** frac
        seen += n
    return bin_bounds(max(counts))[1]


def day_start(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, at.day, tzinfo=UTC)


def hour_start(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, at.day, at.hour, tzinfo=UTC)


def hourly_horizon(now: datetime | None = None) -> datetime:
    return day_start((now or timezone.now()) - timedelta(days=conf.hourly_rollup_days()))


def lock_shared() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [ROLLUP_LOCK])


def lock_exclusive() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ROLLUP_LOCK])


def _empty() -> list:
    return [0, 0, 0, 0, 0, 0, 0, Decimal(0), 0, Decimal(0), 0, 0, 0, 0, Decimal(0)]


def rollup_deltas(rows: list[dict], now: datetime | None = None):
    """Per-bucket sums of inserted rows: ({(granularity, bucket_start, *dims): measures}, {hist key: n})."""
    horizon = hourly_horizon(now).timestamp()
    sums: dict[tuple, list] = defaultdict(_empty)
    hist: dict[tuple, int] = defaultdict(int)
    buckets: dict[int, datetime] = {}  # epoch seconds -> aware datetime, built once per bucket
    error, refused, success, failure, ok = (CallStatus.ERROR, CallStatus.REFUSED, Outcome.SUCCESS, Outcome.FAILURE,
                                            CallStatus.OK)
    for r in rows:
        epoch = int(r["occurred_at"].timestamp())
        day_epoch, hour_epoch = epoch - epoch % 86400, epoch - epoch % 3600
        day = buckets.get(day_epoch)
        if day is None:
            day = buckets[day_epoch] = datetime.fromtimestamp(day_epoch, tz=UTC)
        dims = (r["team_id"], r["feature"], r["tenant"], r["model"], r["provider"], r["source"], r["prompt_name"],
                r["prompt_version"], r["use_case_id"])
        status, cost, outcome = r["status"], r["cost"], r["outcome"]
        keys = [("day", day, *dims), ("dayx", day, dims[0], dims[1], "", *dims[3:]),
                ("dayt", day, dims[0], "", dims[2], "", "", "", "", None, None)]
        if epoch >= horizon:
            hour = buckets.get(hour_epoch)
            if hour is None:
                hour = buckets[hour_epoch] = datetime.fromtimestamp(hour_epoch, tz=UTC)
            keys.append(("hour", hour, *dims))
        savings = r.get("cache_savings") or 0
        hit, hit_saving = r.get("cache_hit"), r.get("cache_saving") or 0
        for key in keys:
            m = sums[key]
            m[0] += 1
            if status == error:
                m[1] += 1
            elif status == refused:
                m[2] += 1
            m[3] += r["input_tokens"]
            m[4] += r["output_tokens"]
            m[5] += r["cached_input_tokens"]
            m[6] += r["reasoning_tokens"]
            if cost is None:
                m[8] += 1
            else:
                m[7] += cost
            if savings:
                m[9] += savings
            m[10] += r["latency_ms"]
            if outcome == success:
                m[11] += 1
            elif outcome == failure:
                m[12] += 1
            if hit:
                m[13] += 1
                m[14] += hit_saving
        if status == ok:
            hist[(day.date(), r["team_id"], r["feature"], r["model"], r["source"], token_bin(r["input_tokens"]))] += 1
    return sums, hist


def _sort_key(key: tuple) -> tuple:
    # A total order over keys holding None, so every writer locks rollup rows in the same order (no deadlocks).
    return tuple((v is None, "" if v is None else v) for v in key)


_UPSERT_ROLLUPS = (
    f"INSERT INTO costs_usagerollup ({', '.join(('granularity', 'bucket_start', *DIMENSIONS, *MEASURES))}) "
    f"SELECT * FROM unnest({', '.join(f'%s::{t}[]' for t in _ROLLUP_TYPES)}) "
    "ON CONFLICT ON CONSTRAINT usage_rollup_key DO UPDATE SET "
    + ", ".join(f"{m} = costs_usagerollup.{m} + EXCLUDED.{m}" for m in MEASURES)
)
_UPSERT_HISTOGRAM = """
    INSERT INTO costs_usagetokenhistogram (day, team_id, feature, model, source, bin, requests)
    SELECT * FROM unnest(%s::date[], %s::bigint[], %s::text[], %s::text[], %s::text[], %s::smallint[], %s::bigint[])
    {after}
    ON CONFLICT ON CONSTRAINT usage_histogram_key
    DO UPDATE SET requests = costs_usagetokenhistogram.requests + EXCLUDED.requests
"""


def rollups_apply(sums: dict[tuple, list], hist: dict[tuple, int]) -> None:
    """Add deltas to the rollup rows (INSERT … ON CONFLICT DO UPDATE): one statement for both tables, so the
    rows every concurrent writer shares are locked one round trip before COMMIT, not two."""
    statements, params = [], []
    if sums:
        keys = sorted(sums, key=_sort_key)
        columns = [[] for _ in range(2 + len(DIMENSIONS) + len(MEASURES))]
        for key in keys:
            for i, value in enumerate(key):
                columns[i].append(value)
            for j, value in enumerate(sums[key]):
                columns[2 + len(DIMENSIONS) + j].append(value)
        statements.append(_UPSERT_ROLLUPS)
        params.extend(columns)
    if hist:
        keys = sorted(hist, key=_sort_key)
        statements.append(_UPSERT_HISTOGRAM.format(after="WHERE (SELECT count(*) FROM rollups) >= 0" if sums else ""))
        params.extend([[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [k[3] for k in keys],
                       [k[4] for k in keys], [k[5] for k in keys], [hist[k] for k in keys]])
    if len(statements) == 2:  # the histogram waits for the rollups (an InitPlan): every writer's lock order
        db.execute_fast(f"WITH rollups AS ({statements[0]} RETURNING 1) {statements[1]}", params)
    elif statements:
        db.execute_fast(statements[0], params)


def rollup_outcome_shift(changes: list[tuple[dict, str, str]]) -> None:
    """Move events between success/failure/unknown in their rollups: [(event dims, old outcome, new outcome)]."""
    sums: dict[tuple, list] = defaultdict(_empty)
    horizon = hourly_horizon()
    for r, old, new in changes:
        dims = (r["team_id"], r["feature"], r["tenant"], r["model"], r["provider"], r["source"], r["prompt_name"],
                r["prompt_version"], r["use_case_id"])
        day = day_start(r["occurred_at"])
        keys = [("day", day, *dims), ("dayx", day, dims[0], dims[1], "", *dims[3:]),
                ("dayt", day, dims[0], "", dims[2], "", "", "", "", None, None)]
        if r["occurred_at"] >= horizon:
            keys.append(("hour", hour_start(r["occurred_at"]), *dims))
        for key in keys:
            m = sums[key]
            m[11] += (new == Outcome.SUCCESS) - (old == Outcome.SUCCESS)
            m[12] += (new == Outcome.FAILURE) - (old == Outcome.FAILURE)
    if sums:
        rollups_apply(sums, {})


# --- rebuilds from raw events ---------------------------------------------------------------------------------

_REBUILD_SELECT = """
    SELECT %(granularity)s, date_trunc(%(unit)s, e.occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
           e.team_id, {dims},
           count(*), count(*) FILTER (WHERE e.status = 'error'), count(*) FILTER (WHERE e.status = 'refused'),
           sum(e.input_tokens), sum(e.output_tokens), sum(e.cached_input_tokens), sum(e.reasoning_tokens),
           coalesce(sum(e.cost), 0), count(*) FILTER (WHERE e.cost IS NULL),
           coalesce(sum(round(LEAST(e.cached_input_tokens, e.input_tokens)
                              * (p.input_per_mtok - p.cached_input_per_mtok) / 1000000, 8))
                    FILTER (WHERE p.cached_input_per_mtok IS NOT NULL), 0),
           sum(e.latency_ms), count(*) FILTER (WHERE e.outcome = 'success'),
           count(*) FILTER (WHERE e.outcome = 'failure'),
           count(*) FILTER (WHERE e.cache_hit), coalesce(sum(e.cache_saving), 0)
    FROM costs_usageevent e LEFT JOIN costs_price p ON p.id = e.price_id
    WHERE e.occurred_at >= %(start)s AND e.occurred_at < %(end)s
    GROUP BY 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
"""
_ALL_DIMS = "e.feature, e.tenant, e.model, e.provider, e.source, e.prompt_name, e.prompt_version, e.use_case_id"
_CUBES = {  # granularity -> the dimensions it keeps (the others are constants)
    "day": _ALL_DIMS,
    "dayx": "e.feature, ''::text, e.model, e.provider, e.source, e.prompt_name, e.prompt_version, e.use_case_id",
    "dayt": "''::text, e.tenant, ''::text, ''::text, ''::text, ''::text, NULL::int, NULL::bigint",
}


def raw_kept_from() -> datetime | None:
    row = LedgerState.objects.filter(key=RAW_KEPT_FROM).first()
    return row.value if row else None


def rollups_rebuild_day(day: date) -> int:
    """Recompute one UTC day's rollups (day bucket, its hour buckets if recent, histograms) from raw events.

    Idempotent. Holds the rollup lock alone for the day, so ingestion waits instead of being lost or doubled.
    """
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    kept = raw_kept_from()
    if kept is not None and start < kept:
        raise ValueError(f"Raw events before {kept:%Y-%m-%d} were purged; the rollups of {day} cannot be rebuilt.")
    names = ("granularity", "bucket_start", *DIMENSIONS, *MEASURES)
    with transaction.atomic(), connection.cursor() as cursor:
        lock_exclusive()
        cursor.execute("DELETE FROM costs_usagerollup WHERE granularity IN ('day', 'dayx', 'dayt') "
                       "AND bucket_start = %s", [start])
        cursor.execute("DELETE FROM costs_usagerollup WHERE granularity = 'hour' AND bucket_start >= %s "
                       "AND bucket_start < %s", [start, end])
        cursor.execute("DELETE FROM costs_usagetokenhistogram WHERE day = %s", [day])
        params = {"start": start, "end": end}
        insert = f"INSERT INTO costs_usagerollup ({', '.join(names)}) "
        written = 0
        for granularity, dims in _CUBES.items():
            cursor.execute(insert + _REBUILD_SELECT.format(dims=dims),
                           {**params, "granularity": granularity, "unit": "day"})
            written += cursor.rowcount if granularity == "day" else 0
        if end > hourly_horizon():
            cursor.execute(insert + _REBUILD_SELECT.format(dims=_ALL_DIMS),
                           {**params, "granularity": "hour", "unit": "hour"})
        cursor.execute(
            """
            INSERT INTO costs_usagetokenhistogram (day, team_id, feature, model, source, bin, requests)
            SELECT %(day)s, team_id, feature, model, source,
                   CASE WHEN input_tokens <= 0 THEN 0
                        ELSE LEAST(%(max_bin)s, 1 + floor(%(per)s * log(2, input_tokens::numeric) + 1e-9))::int END,
                   count(*)
            FROM costs_usageevent
            WHERE occurred_at >= %(start)s AND occurred_at < %(end)s AND status = 'ok'
            GROUP BY 2, 3, 4, 5, 6
            """,
            {**params, "day": day, "max_bin": MAX_BIN, "per": BINS_PER_DOUBLING},
        )
    return written


def rollups_rebuild(start: date, end: date, on_day=None) -> int:
    """Rebuild every day in [start, end]; one transaction per day so ingestion is only paused briefly."""
    written = 0
    day = start
    while day <= end:
        written += rollups_rebuild_day(day)
        if on_day:
            on_day(day)
        day += timedelta(days=1)
    return written


def use_case_days(since: date | None = None) -> list[date]:
    """The UTC days (from `since`, and not purged) whose raw events carry a use case: the days whose rollups built
    before the use-case dimension (migration 0014) lack it until rebuilt. One pass over the kept events."""
    kept = raw_kept_from()
    starts = [d for d in (kept, since and datetime(since.year, since.month, since.day, tzinfo=UTC)) if d is not None]
    where = "use_case_id IS NOT NULL" + (" AND occurred_at >= %s" if starts else "")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT (occurred_at AT TIME ZONE 'UTC')::date FROM costs_usageevent WHERE {where} "
                       "ORDER BY 1", [max(starts)] if starts else [])
        return [row[0] for row in cursor.fetchall()]


def rollups_backfill_use_cases(since: date | None = None, on_day=None) -> list[date]:
    """Rebuild the rollups of every day use_case_days() names (idempotent, one transaction per day, like the
    nightly reconcile): after it, the cost and the response cache's saving per use case cover those days too."""
    days = use_case_days(since)
    for day in days:
        rollups_rebuild_day(day)
        if on_day:
            on_day(day)
    return days


def rollups_reconcile(*, today: date | None = None, max_days: int = 35) -> list[date]:
    """The nightly job: rebuild each closed day not yet reconciled (catching up after downtime), then mark it.

    Maintained at ingest, rollups are normally already right; this repairs anything written around the
    service (bulk SQL loads, manual fixes) and is a no-op in cost when nothing changed.
    """
    today = today or timezone.now().date()
    state = LedgerState.objects.filter(key=RECONCILED_THROUGH).first()
    first = state.value.date() + timedelta(days=1) if state else today - timedelta(days=2)
    first = max(first, today - timedelta(days=max_days))
    kept = raw_kept_from()
    if kept is not None:
        first = max(first, kept.date() + timedelta(days=1))
    done = []
    day = first
    while day < today:
        rollups_rebuild_day(day)
        LedgerState.objects.update_or_create(key=RECONCILED_THROUGH, defaults={
            "value": datetime(day.year, day.month, day.day, tzinfo=UTC)})
        done.append(day)
        day += timedelta(days=1)
    return done


def hourly_rollups_prune(now: datetime | None = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM costs_usagerollup WHERE granularity = 'hour' AND bucket_start < %s",
                       [hourly_horizon(now)])
        return cursor.rowcount


def raw_events_purge(*, now: datetime | None = None, batch: int = 20_000) -> int:
    """Delete raw events older than the retention (in batches, by time: the BRIN index finds them). Rollups stay."""
    now = now or timezone.now()
    cutoff = day_start(now - timedelta(days=conf.raw_retention_days()))
    deleted = 0
    with transaction.atomic():
        LedgerState.objects.update_or_create(key=RAW_KEPT_FROM, defaults={"value": cutoff})
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM costs_usageevent WHERE id IN (SELECT id FROM costs_usageevent WHERE occurred_at < %s "
                "LIMIT %s)", [cutoff, batch])
            count = cursor.rowcount
        deleted += count
        if count < batch:
            return deleted
