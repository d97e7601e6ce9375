"""Rollups equal the raw sums, however events arrive (batches, duplicates, late outcomes), and a rebuild from
raw events gives the same rows. Property-tested with hypothesis against the real database."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.costs.ledger import DEFAULTS, ledger_write
from apps.costs.models import UsageEvent, UsageRollup, UsageTokenHistogram
from apps.costs.rollups import (
    hourly_rollups_prune,
    percentile_from_bins,
    raw_events_purge,
    rollups_rebuild,
    rollups_rebuild_day,
    token_bin,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now()
DIMS = "team_id, feature, tenant, model, provider, source, prompt_name, prompt_version, use_case_id"
SUMS = ("count(*), count(*) FILTER (WHERE status = 'error'), count(*) FILTER (WHERE status = 'refused'), "
        "sum(input_tokens), sum(output_tokens), sum(cached_input_tokens), sum(reasoning_tokens), "
        "coalesce(sum(cost), 0), count(*) FILTER (WHERE cost IS NULL), sum(latency_ms), "
        "count(*) FILTER (WHERE outcome = 'success'), count(*) FILTER (WHERE outcome = 'failure')")
ROLLUP_SUMS = ("requests, errors, refused, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cost, "
               "unpriced, latency_ms_sum, successes, failures")


def raw_sums(unit: str, since=None, merge_tenants=False, only_tenants=False) -> dict:
    where = "WHERE occurred_at >= %s" if since else ""
    dims = DIMS.replace("tenant", "''::text AS tenant") if merge_tenants else DIMS
    group = DIMS.replace(" tenant,", "") if merge_tenants else DIMS
    if only_tenants:
        dims = "team_id, '', tenant, '', '', '', '', NULL::int, NULL::bigint"
        group = "team_id, tenant"
    with connection.cursor() as c:
        c.execute(f"SELECT date_trunc('{unit}', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', {dims}, {SUMS} "
                  f"FROM costs_usageevent {where} GROUP BY 1, {group}", [since] if since else [])
        return {tuple(r[:10]): tuple(r[10:]) for r in c.fetchall()}


def rollup_sums(granularity: str) -> dict:
    with connection.cursor() as c:
        c.execute(f"SELECT bucket_start, {DIMS}, {ROLLUP_SUMS} FROM costs_usagerollup WHERE granularity = %s "
                  f"AND requests > 0", [granularity])
        return {tuple(r[:10]): tuple(r[10:]) for r in c.fetchall()}


def histogram_counts() -> dict:
    return {(h.day, h.team_id, h.feature, h.model, h.source, h.bin): h.requests
            for h in UsageTokenHistogram.objects.filter(requests__gt=0)}


def expected_histogram() -> dict:
    counts = defaultdict(int)
    for e in UsageEvent.objects.filter(status="ok"):
        counts[(e.occurred_at.astimezone(UTC).date(), e.team_id, e.feature, e.model, e.source,
                token_bin(e.input_tokens))] += 1
    return dict(counts)


events = st.lists(st.fixed_dictionaries({
    "team_id": st.sampled_from([None, 1, 2]),
    "feature": st.sampled_from(["", "answer", "summarise"]),
    "tenant": st.sampled_from(["", "acme", "globex"]),
    "model": st.sampled_from(["gpt-4o-mini", "gpt-4o", "my-finetune"]),  # the last one is unpriced
    "source": st.sampled_from(["api", "playground", "eval"]),
    "prompt_name": st.sampled_from(["", "support-answer"]),
    "prompt_version": st.sampled_from([None, 1, 2]),
    "use_case_id": st.sampled_from([None, None, 7, 8]),  # the use case is a dimension (migration 0014)
    "input_tokens": st.integers(0, 200_000),
    "output_tokens": st.integers(0, 5_000),
    "cached_ratio": st.floats(0, 1),
    "status": st.sampled_from(["ok", "ok", "ok", "error", "refused"]),
    "outcome": st.sampled_from(["unknown", "success", "failure"]),
    "minutes_ago": st.integers(0, 60 * 24 * 12),  # inside and outside the hourly window
    "latency_ms": st.integers(0, 30_000),
    "request": st.integers(0, 60),  # small range: duplicates happen
}), min_size=1, max_size=60)


def as_rows(drawn) -> list[dict]:
    from apps.costs.ingest import price_rows

    rows = []
    for e in drawn:
        row = {**DEFAULTS, **{k: v for k, v in e.items() if k not in ("cached_ratio", "minutes_ago", "request")}}
        row["cached_input_tokens"] = int(e["input_tokens"] * e["cached_ratio"])
        row["occurred_at"] = NOW - timedelta(minutes=e["minutes_ago"])
        row["request_id"] = f"p-{e['request']}"
        row["provider"] = "openai"
        rows.append(row)
    price_rows(rows)
    return rows


def reset_ledger():
    with connection.cursor() as c:
        for table in ("costs_usageevent", "costs_usagerollup", "costs_usagetokenhistogram"):
            c.execute(f"DELETE FROM {table}")  # not TRUNCATE: deferred FK checks are pending in the test transaction


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=events, split=st.integers(1, 7), outcomes=st.lists(st.tuples(st.integers(0, 60),
                                                                         st.sampled_from(["success", "failure",
                                                                                          "unknown"])), max_size=20))
def test_rollups_equal_raw_sums_whatever_the_batches(prices, admin_user, drawn, split, outcomes):
    from apps.costs.services import usage_outcomes_set

    reset_ledger()
    rows = as_rows(drawn)
    for start in range(0, len(rows), split):  # several batches; a request id seen before is a duplicate
        seen = set()
        batch = []
        for r in rows[start:start + split]:
            if r["request_id"] not in seen:
                seen.add(r["request_id"])
                batch.append(dict(r))
        ledger_write(batch)
    ledger_write([dict(r) for r in rows[:3]])  # a resent batch changes nothing
    usage_outcomes_set(outcomes=[{"request_id": f"p-{i}", "outcome": o} for i, o in dict(outcomes).items()],
                       actor=admin_user)

    hourly_since = min(r["occurred_at"] for r in rows)
    from apps.costs.rollups import hourly_horizon

    assert rollup_sums("day") == raw_sums("day")
    assert rollup_sums("dayx") == raw_sums("day", merge_tenants=True)
    assert rollup_sums("dayt") == raw_sums("day", only_tenants=True)
    assert rollup_sums("hour") == raw_sums("hour", since=max(hourly_since, hourly_horizon()))
    assert histogram_counts() == expected_histogram()

    before = (rollup_sums("day"), rollup_sums("dayx"), rollup_sums("dayt"), rollup_sums("hour"), histogram_counts())
    days = sorted({r["occurred_at"].astimezone(UTC).date() for r in rows})
    rollups_rebuild(days[0], days[-1])
    rollups_rebuild(days[0], days[-1])  # idempotent
    assert (rollup_sums("day"), rollup_sums("dayx"), rollup_sums("dayt"), rollup_sums("hour"),
            histogram_counts()) == before


def test_cache_savings_are_rolled_up_at_the_price_of_each_call(prices):
    rows = as_rows([{"team_id": 1, "feature": "a", "tenant": "", "model": "gpt-4o-mini", "source": "api",
                     "prompt_name": "", "prompt_version": None, "input_tokens": 1_000_000, "output_tokens": 0,
                     "cached_ratio": 0.5, "status": "ok", "outcome": "unknown", "minutes_ago": 10,
                     "latency_ms": 1, "request": 1}])
    ledger_write(rows)
    day = UsageRollup.objects.get(granularity="day")
    assert UsageRollup.objects.get(granularity="dayx").cache_savings == day.cache_savings
    # 500k cached tokens x ($0.15 - $0.075) per million
    assert str(day.cache_savings) == "0.03750000"

    rollups_rebuild_day(rows[0]["occurred_at"].date())
    assert str(UsageRollup.objects.get(granularity="day").cache_savings) == "0.03750000"


def test_purged_raw_events_leave_rollups_and_refuse_a_rebuild(prices, settings):
    settings.COSTS_RAW_RETENTION_DAYS = 5
    old = as_rows([{"team_id": 1, "feature": "a", "tenant": "", "model": "gpt-4o", "source": "api", "prompt_name": "",
                    "prompt_version": None, "input_tokens": 100, "output_tokens": 10, "cached_ratio": 0,
                    "status": "ok", "outcome": "unknown", "minutes_ago": 60 * 24 * 9, "latency_ms": 1, "request": 1}])
    ledger_write(old)

    assert raw_events_purge() == 1
    assert hourly_rollups_prune() == 0 and not UsageRollup.objects.filter(granularity="hour").exists()
    assert not UsageEvent.objects.exists()
    assert UsageRollup.objects.get(granularity="day").requests == 1  # rollups are kept
    with pytest.raises(ValueError, match="purged"):
        rollups_rebuild_day(old[0]["occurred_at"].date())


def test_percentiles_from_bins_are_within_a_bin_of_the_truth():
    import random

    rng = random.Random(7)
    values = [int(rng.lognormvariate(7, 1)) + 1 for _ in range(5000)]
    bins = defaultdict(int)
    for v in values:
        bins[token_bin(v)] += 1
    ordered = sorted(values)
    for q in (0.5, 0.95):
        truth = ordered[int(q * len(ordered))]
        estimate = percentile_from_bins(bins, q)
        assert abs(estimate - truth) / truth < 0.19  # one bin is 2^(1/4) = 1.19 wide


def test_the_nightly_reconcile_catches_up_after_downtime(prices):
    from apps.costs.models import LedgerState
    from apps.costs.rollups import rollups_reconcile

    today = NOW.astimezone(UTC).date()
    LedgerState.objects.create(key="reconciled_through", value=datetime.combine(today - timedelta(days=4),
                                                                                datetime.min.time(), tzinfo=UTC))
    with connection.cursor() as c:  # written around the service: rollups do not know yet
        c.execute("INSERT INTO costs_usageevent (occurred_at, request_id, feature, tenant, provider, model, operation, "
                  "prompt_name, source, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cost, "
                  "latency_ms, status, error_type, outcome, ingested_at) VALUES (%s, 'bulk-1', '', '', '', 'gpt-4o', "
                  "'chat', '', 'api', 10, 1, 0, 0, 0.5, 0, 'ok', '', 'unknown', now())",
                  [NOW - timedelta(days=2)])

    assert rollups_reconcile(today=today) == [today - timedelta(days=3), today - timedelta(days=2),
                                              today - timedelta(days=1)]
    assert rollups_reconcile(today=today) == []  # nothing left to catch up
    assert UsageRollup.objects.get(granularity="day").cost == 0.5
