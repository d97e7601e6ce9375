"""Service-level indicator counts per use case, per minute and per hour (SliMinute, SliHour): what the SLOs
(apps/slos) read to compute error budgets and burn rates without scanning the ledger.

The recorder adds the rows the ledger inserted, in the ledger write's transaction (so each call counts once),
a few upserts per batch: the request path pays nothing. What counts (ADR 0105, docs/slos.md):

- only calls made with a gateway key bound to a use case; the calls of a key bound to none are counted in the
  same rows under the key's own series, `use_case_id = -key_id` (`key_series`, ADR 0103): no SLO reads them
  (SLOs name positive use case ids), the incidents' gateway error rule does;
- availability: valid = every attributed call except refusals the owner's own policy asked for (key limits,
  budgets `insufficient_quota`, use case not active, incident switches, guardrail blocks) and the caller's bad
  input (`BadRequest`, `ContextLengthExceeded`); bad = the valid ones the platform failed: upstream errors,
  timeouts, broken streams, upstream 429s, and the fail-closed 503s (`budget_unavailable`, `guard_failed`);
- latency: valid = the successful calls; slow[i] = those slower than LATENCY_THRESHOLDS_MS[i], measured as
  time to first token for streams (what the user waits for) and total time otherwise. Exact counts at a fixed
  ladder (Prometheus' `le` buckets): a latency SLO picks its threshold from the ladder.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from apps.core.stamped_cache import stamp_renew, stamped_get
from apps.costs.db import execute_fast
from apps.costs.models import CallStatus
from apps.gateway.models import SliHour, SliMinute

# Thresholds (ms) with exact "slower than" counts. Positions are stored: only append to the end.
LATENCY_THRESHOLDS_MS: tuple[int, ...] = (500, 1000, 2000, 3000, 4000, 5000, 6000, 8000, 10000, 15000, 20000,
                                          30000)
# Refusal codes that are the platform failing closed, not a policy doing its job: they burn the budget.
PLATFORM_REFUSALS = frozenset({"budget_unavailable", "guard_failed"})
# Failures caused by what the caller sent, or a guardrail refusing content by policy: not valid events.
NOT_COUNTED = frozenset({"BadRequest", "ContextLengthExceeded", "content_policy_violation"})
# A window's whole hours older than this before its end are "settled": summed once per hour and cached (the SLOs'
# 28-day read every minute), the recent ones read each time. A write into a settled hour renews SETTLED_STAMP.
SETTLED_AFTER = timedelta(hours=1)
SETTLED_STAMP = "gateway:sli:settled"
SETTLED_TTL = 2 * 3600  # seconds: an entry serves the hour it was built for (and the next, if nothing moves)


def key_series(key_id: int) -> int:
    """The `use_case_id` under which a key bound to no use case is counted: minus its id (use case ids are > 0)."""
    return -int(key_id)


def key_of_series(series_id: int) -> int | None:
    """The key id of a key series; None for a use case."""
    return -series_id if series_id < 0 else None


@dataclass
class SliCounts:
    requests: int = 0
    bad: int = 0
    answered: int = 0
    slow: list[int] = field(default_factory=lambda: [0] * len(LATENCY_THRESHOLDS_MS))

    def slow_over(self, threshold_ms: int) -> int:
        return self.slow[LATENCY_THRESHOLDS_MS.index(threshold_ms)]


def classify(row: dict) -> tuple[int, int, int, int | None]:
    """(valid, bad, answered, latency ms or None) of one ledger row for the SLIs."""
    error_type = row.get("error_type") or ""
    if error_type in NOT_COUNTED:
        return 0, 0, 0, None
    if row["status"] == CallStatus.REFUSED:
        return (1, 1, 0, None) if error_type in PLATFORM_REFUSALS else (0, 0, 0, None)
    if row["status"] != CallStatus.OK:
        return 1, 1, 0, None
    ttft = row.get("ttft_ms")
    return 1, 0, 1, ttft if ttft is not None else (row.get("latency_ms") or 0)


def _upsert_sql(model, time_column: str, count_type: str) -> str:
    """One statement for a whole batch: columns as arrays (binary, through costs' fast cursor), `slow` as one flat
    array cut back into rows of the ladder's width."""
    table, width = model._meta.db_table, len(LATENCY_THRESHOLDS_MS)
    return f"""
INSERT INTO {table} AS t ({time_column}, use_case_id, requests, bad, answered, slow)
SELECT at, u, r, b, a, (%s::{count_type}[])[(o - 1) * {width} + 1 : o * {width}]
  FROM unnest(%s::timestamptz[], %s::bigint[], %s::{count_type}[], %s::{count_type}[], %s::{count_type}[])
       WITH ORDINALITY AS x(at, u, r, b, a, o)
ON CONFLICT ON CONSTRAINT {model._meta.constraints[0].name} DO UPDATE SET
    requests = t.requests + EXCLUDED.requests, bad = t.bad + EXCLUDED.bad, answered = t.answered + EXCLUDED.answered,
    slow = ARRAY(SELECT coalesce(a, 0) + coalesce(b, 0) FROM unnest(t.slow, EXCLUDED.slow) AS u(a, b))
"""


_MINUTE_SQL = _upsert_sql(SliMinute, "minute", "int")
_HOUR_SQL = _upsert_sql(SliHour, "hour", "bigint")


def sli_add(rows: list[dict]) -> None:
    """Add the ledger rows of gateway calls (ledger_write's inserted rows) to the per-minute and per-hour counts.
    Call it inside the ledger write's transaction. Rows are upserted in key order, so concurrent writers never
    deadlock."""
    minutes: dict[tuple, SliCounts] = defaultdict(SliCounts)
    for row in rows:
        use_case_id, key_id = row.get("use_case_id"), row.get("gateway_key_id")
        if key_id is None:
            continue
        if use_case_id is None:
            use_case_id = key_series(key_id)
        valid, bad, answered, latency = classify(row)
        if not valid:
            continue
        counts = minutes[(use_case_id, row["occurred_at"].replace(second=0, microsecond=0))]
        counts.requests += valid
        counts.bad += bad
        counts.answered += answered
        if latency is not None:
            for i, threshold in enumerate(LATENCY_THRESHOLDS_MS):
                if latency <= threshold:
                    break
                counts.slow[i] += 1
    sli_add_counts(minutes)


def sli_add_counts(minutes: dict[tuple[int, datetime], SliCounts]) -> None:
    """Add counts per (use case id, minute) to both tables (sli_add's second half; demo data and benchmarks call
    it with counts they made)."""
    if not minutes:
        return
    settled = floor_hour(timezone.now()) - SETTLED_AFTER
    if any(minute < settled for _u, minute in minutes):  # late data (or demo/bench counts): cached sums are stale
        stamp_renew(SETTLED_STAMP)
    hours: dict[tuple, SliCounts] = defaultdict(SliCounts)
    for (use_case_id, minute), counts in minutes.items():
        total = hours[(use_case_id, minute.replace(minute=0))]
        total.requests += counts.requests
        total.bad += counts.bad
        total.answered += counts.answered
        total.slow = [a + b for a, b in zip(total.slow, counts.slow, strict=True)]
    for sql, sums in ((_MINUTE_SQL, minutes), (_HOUR_SQL, hours)):
        # One statement per table (the keys are distinct, so no row is updated twice in it), in key order.
        ordered = sorted(sums.items())
        execute_fast(sql, [[v for _key, c in ordered for v in c.slow], [at for (_u, at), _c in ordered],
                           [u for (u, _at), _c in ordered], [c.requests for _key, c in ordered],
                           [c.bad for _key, c in ordered], [c.answered for _key, c in ordered]])


# -- reading ----------------------------------------------------------------------------------------------------
def floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def ceil_hour(at: datetime) -> datetime:
    floor = floor_hour(at)
    return floor if floor == at else floor + timedelta(hours=1)


_WINDOW_SQL = f"""
SELECT use_case_id, sum(requests), sum(bad), sum(answered){{slow_sums}} FROM (
    SELECT use_case_id, requests, bad, answered, slow FROM {SliHour._meta.db_table}
     WHERE use_case_id = ANY(%(ids)s) AND hour >= %(hour_lo)s AND hour < %(hour_hi)s
    UNION ALL
    SELECT use_case_id, requests, bad, answered, slow::bigint[] FROM {SliMinute._meta.db_table}
     WHERE use_case_id = ANY(%(ids)s)
       AND ((minute >= %(start)s AND minute < %(head)s) OR (minute >= %(tail)s AND minute < %(end)s))
) AS counts GROUP BY use_case_id
"""


def sli_window(use_case_ids, *, start: datetime, end: datetime, thresholds=None) -> dict[int, SliCounts]:
    """The counts of each use case in [start, end): whole hours from SliHour, the partial hours at both ends
    from SliMinute. Where the minutes at the start are past their retention, the window starts at the next
    whole hour (at most 59 minutes short: 0.15 % of 28 days). Use cases without traffic are absent.
    `thresholds`: the latency thresholds (ms) to sum (default: all); the others' slow counts stay 0.

    The whole hours more than SETTLED_AFTER before `end` are summed once per hour and cached (stamped: a write
    into one of them renews the stamp), so a 28-day window evaluated every minute reads about an hour of rows."""
    ids = sorted({int(i) for i in use_case_ids})
    if not ids or end <= start:
        return {}
    hour_lo, hour_hi = ceil_hour(start), floor_hour(end)
    if hour_lo >= hour_hi:  # within one or two partial hours: minutes only
        hour_lo = hour_hi = head = tail = end
    else:
        head, tail = hour_lo, hour_hi
    wanted = sorted(range(len(LATENCY_THRESHOLDS_MS)) if thresholds is None
                    else {LATENCY_THRESHOLDS_MS.index(t) for t in thresholds})
    settled = max(hour_lo, hour_hi - SETTLED_AFTER)
    out = {}
    if settled > hour_lo:  # [hour_lo, settled): the cached part
        for use_case_id, row in _settled_sums(ids, hour_lo, settled, wanted).items():
            _add(out, use_case_id, row, wanted)
    params = {"ids": ids, "hour_lo": settled, "hour_hi": hour_hi, "start": start, "head": head, "tail": tail,
              "end": end}
    for use_case_id, *row in _sums(_WINDOW_SQL, params, wanted):
        _add(out, use_case_id, row, wanted)
    return out


def _sums(sql: str, params: dict, wanted: list[int]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql.format(slow_sums="".join(f", sum(slow[{i + 1}])" for i in wanted)), params)
        return [(uc, *(int(v or 0) for v in values)) for uc, *values in cursor.fetchall()]


def _add(out: dict, use_case_id: int, row, wanted: list[int]) -> None:
    counts = out.get(use_case_id)
    if counts is None:
        counts = out[use_case_id] = SliCounts()
    counts.requests += row[0]
    counts.bad += row[1]
    counts.answered += row[2]
    for i, value in zip(wanted, row[3:], strict=True):
        counts.slow[i] += value


_HOURS_SQL = f"""
SELECT use_case_id, sum(requests), sum(bad), sum(answered){{slow_sums}} FROM {SliHour._meta.db_table}
 WHERE use_case_id = ANY(%(ids)s) AND hour >= %(hour_lo)s AND hour < %(hour_hi)s GROUP BY use_case_id
"""


def _settled_sums(ids: list[int], hour_lo: datetime, hour_hi: datetime, wanted: list[int]) -> dict[int, list]:
    """{use case: [requests, bad, answered, *slow of `wanted`]} over whole hours [hour_lo, hour_hi), cached."""
    digest = hashlib.blake2b(repr((ids, wanted)).encode(), digest_size=12).hexdigest()
    key = f"gateway:sli:hours:{hour_lo:%Y%m%d%H}:{hour_hi:%Y%m%d%H}:{digest}"
    return stamped_get(SETTLED_STAMP, key, lambda: {uc: row for uc, *row in _sums(
        _HOURS_SQL, {"ids": ids, "hour_lo": hour_lo, "hour_hi": hour_hi}, wanted)}, timeout=SETTLED_TTL)


def sli_hours(use_case_id: int, *, start: datetime, end: datetime) -> list[tuple[datetime, SliCounts]]:
    """The hourly counts of one use case from the hour of `start` to `end`, in time order (hours without traffic
    are absent): the budget chart's points."""
    rows = SliHour.objects.filter(use_case_id=use_case_id, hour__gte=floor_hour(start), hour__lt=end) \
        .order_by("hour").values_list("hour", "requests", "bad", "answered", "slow")
    width = len(LATENCY_THRESHOLDS_MS)
    return [(hour, SliCounts(requests, bad, answered, (list(slow) + [0] * width)[:width]))
            for hour, requests, bad, answered, slow in rows]
