"""The gateway's daily rollups (TrafficDaily, LatencyDaily), added to by the recorder from the rows the ledger
inserted, in the ledger write's transaction: each call counts exactly once, and the dashboards read a few rows
per day and key instead of the raw ledger (selectors.traffic_spend, selectors.traffic_latency). Distinct end users
per day and key (EndUserDaily, hashed) are added here too, for the scorecards' adoption KPI, and the calls' token
counts per day and use case as a log-scale histogram (TokensDaily), for their median and P95 tokens per request."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.db import connection

from apps.costs.db import execute_fast
from apps.costs.models import CallStatus
from apps.costs.rollups import token_bin
from apps.gateway.models import EndUserDaily, LatencyDaily, TokensDaily, TrafficDaily

_TRAFFIC_SQL = f"""
INSERT INTO {TrafficDaily._meta.db_table} AS t (day, team_id, gateway_key_id, alias, deployment, model, requests,
    errors, refused, input_tokens, output_tokens, cost, unpriced, fallbacks)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT ON CONSTRAINT gateway_traffic_daily_key DO UPDATE SET
    requests = t.requests + EXCLUDED.requests, errors = t.errors + EXCLUDED.errors,
    refused = t.refused + EXCLUDED.refused, input_tokens = t.input_tokens + EXCLUDED.input_tokens,
    output_tokens = t.output_tokens + EXCLUDED.output_tokens, cost = t.cost + EXCLUDED.cost,
    unpriced = t.unpriced + EXCLUDED.unpriced, fallbacks = t.fallbacks + EXCLUDED.fallbacks
"""
_LATENCY_SQL = f"""
INSERT INTO {LatencyDaily._meta.db_table} AS t (day, team_id, gateway_key_id, alias, deployment, measure, bin,
    requests)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT ON CONSTRAINT gateway_latency_daily_key DO UPDATE SET requests = t.requests + EXCLUDED.requests
"""
_END_USER_SQL = f"""
INSERT INTO {EndUserDaily._meta.db_table} (day, gateway_key_id, use_case_id, user_hash) VALUES (%s, %s, %s, %s)
ON CONFLICT ON CONSTRAINT gateway_end_user_daily_key DO NOTHING
"""

# One statement per batch: columns as arrays (binary), the bins as one flat array cut back into rows of the batch's
# width; a stored row and a new one of another width are summed position by position (the shorter padded).
_TOKENS_SQL = f"""
INSERT INTO {TokensDaily._meta.db_table} AS t (day, use_case_id, bins, updated_at)
SELECT d, u, (%s::bigint[])[(o - 1) * %s + 1 : o * %s], now()
  FROM unnest(%s::date[], %s::bigint[]) WITH ORDINALITY AS x(d, u, o)
ON CONFLICT ON CONSTRAINT gateway_tokens_daily_key DO UPDATE SET
    bins = ARRAY(SELECT coalesce(a, 0) + coalesce(b, 0) FROM unnest(t.bins, EXCLUDED.bins) AS n(a, b)),
    updated_at = EXCLUDED.updated_at
"""


def _latencies(row: dict) -> dict[str, int]:
    """The measures of one call that it has: total always, upstream/overhead once a deployment answered, TTFT
    for streams."""
    out = {LatencyDaily.Measure.TOTAL: row["latency_ms"]}
    upstream = row.get("upstream_ms")
    if upstream is not None:
        out[LatencyDaily.Measure.UPSTREAM] = upstream
        out[LatencyDaily.Measure.OVERHEAD] = max(0, row["latency_ms"] - upstream)
    if row.get("ttft_ms") is not None:
        out[LatencyDaily.Measure.TTFT] = row["ttft_ms"]
    return out


def traffic_add(rows: list[dict]) -> None:
    """Add the ledger rows of gateway calls (ledger_write's inserted rows) to the daily rollups. Call it inside
    the ledger write's transaction. Rows are upserted in key order, so concurrent writers never deadlock."""
    sums: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, 0, Decimal(0), 0, 0])
    bins: dict[tuple, int] = defaultdict(int)
    users: set[tuple] = set()
    tokens: dict[tuple, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        if row.get("gateway_key_id") is None:
            continue
        day = row["occurred_at"].date()
        if row.get("use_case_id") is not None:
            calls = tokens[(row["use_case_id"], day)]  # touched by every call: the use case has new data
            if row["status"] != CallStatus.REFUSED:
                calls[token_bin(row["input_tokens"] + row["output_tokens"])] += 1
        if row.get("end_user"):
            users.add((day, row["gateway_key_id"], row.get("use_case_id"), row["end_user"]))
        where = (day, row["team_id"], row["gateway_key_id"], row.get("alias") or "", row.get("deployment") or "")
        total = sums[(*where, row["model"])]
        total[0] += 1
        total[1] += row["status"] == CallStatus.ERROR
        total[2] += row["status"] == CallStatus.REFUSED
        total[3] += row["input_tokens"]
        total[4] += row["output_tokens"]
        if row["cost"] is None:
            total[6] += 1
        else:
            total[5] += row["cost"]
        total[7] += row.get("fallbacks") or 0
        if row["status"] != CallStatus.REFUSED:  # a refusal never reached the call path: no latency to speak of
            for measure, ms in _latencies(row).items():
                bins[(*where, measure, token_bin(ms))] += 1
    if not sums:
        return
    with connection.cursor() as cursor:
        cursor.executemany(_TRAFFIC_SQL, [(*key, *values) for key, values in sorted(sums.items(), key=_order)])
        if bins:
            cursor.executemany(_LATENCY_SQL, [(*key, n) for key, n in sorted(bins.items(), key=_order)])
        if users:
            cursor.executemany(_END_USER_SQL, sorted(users, key=lambda u: (u[0], u[1], u[3])))
    if tokens:
        tokens_add(tokens)


def tokens_add(tokens: dict[tuple, dict[int, int]]) -> None:
    """Add calls per token bin to TokensDaily, per (use case id, day): one upsert, in key order (no deadlock
    between concurrent writers). traffic_add's last step; benchmarks and demo data call it with counts they made."""
    ordered = sorted(tokens.items())
    width = 1 + max((b for _key, bins in ordered for b in bins), default=0)
    flat = [bins.get(b, 0) for _key, bins in ordered for b in range(width)]
    execute_fast(_TOKENS_SQL, [flat, width, width, [day for (_u, day), _b in ordered],
                               [u for (u, _day), _b in ordered]])


def _order(item) -> tuple:
    return tuple((value is None, value if value is not None else 0) for value in item[0])
