"""SLOs (issue #16): the every-minute evaluation of every SLO, and what the SLI counts add to the recorder.

    .venv/bin/python -m bench.slos [--use-cases 500] [--batches 20] [--repeat 5] [--requests 30] [--no-recorder]

1. Evaluation: `--use-cases` use cases with two SLOs each (availability 99.5 %, latency 95 % under 6 s) and 28
   days of SLI counts as the retention keeps them: every hour of 28 days in SliHour and every minute of the
   last GATEWAY_SLI_MINUTE_RETENTION_HOURS (80 h) in SliMinute (both written with generate_series: 336 k hour
   and 2.4 M minute rows at 500 use cases). `slos_evaluate()` is timed `--repeat` times (p50, max): the
   minute's whole job (six window reads, the SLO rows' update, alerts). Since sc-more the settled hours' sums are
   cached: it is timed with the cache warm and cold (the stamp renewed first, as every minute was before),
   alternating. Then the SLO pages' p50/p95 (Django's request stack, no network): the overview and one use case's
   page with its two budget charts.
2. Recorder overhead: `--batches` batches of 500 gateway ledger rows (50 use cases, 1 % errors) written as
   `recording.drain_once` writes them — `ledger_write` + `traffic_add` — without and with `sli_add`,
   alternating; the median per batch of each and the ratio. Twice: calls spread over one minute (a batch of a
   busy recorder: 50 minute keys) and over five (250 minute keys: the worst case of a lagging recorder).

Uses the `portal_bench` database (bench/common.py); its SLO tables are emptied first. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bench.common import setup_django


def seed(n_use_cases: int, now: datetime) -> list[int]:
    from django.db import connection

    from apps.accounts.models import Team
    from apps.gateway.models import SliHour, SliMinute
    from apps.gateway.sli import LATENCY_THRESHOLDS_MS
    from apps.reviews.models import UseCase
    from apps.slos.models import Slo, SloAlert

    SloAlert.objects.all().delete()
    Slo.objects.all().delete()
    team, _ = Team.objects.get_or_create(slug="bench-slos", defaults={"name": "Bench SLOs"})
    UseCase.objects.filter(team=team).delete()
    use_cases = UseCase.objects.bulk_create([UseCase(team=team, title=f"bench use case {i}", purpose="bench",
                                                     state="active") for i in range(n_use_cases)])
    ids = [u.pk for u in use_cases]
    Slo.objects.bulk_create([Slo(use_case=u, team=team, kind=kind, target_percent=target, threshold_ms=threshold)
                             for u in use_cases for kind, target, threshold in (("availability", "99.5", None),
                                                                                ("latency", "95", 6000))])
    width = len(LATENCY_THRESHOLDS_MS)
    slow = "ARRAY[" + ", ".join(f"(r %% {3 + i})" for i in range(width)) + "]"
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {SliMinute._meta.db_table}, {SliHour._meta.db_table}")
        cursor.execute(f"""
            INSERT INTO {SliHour._meta.db_table} (hour, use_case_id, requests, bad, answered, slow)
            SELECT h, u, 600, r %% 3, 600 - r %% 3, {slow}::bigint[] FROM unnest(%s::bigint[]) AS u,
                   generate_series(%s::timestamptz - interval '28 days', %s::timestamptz, interval '1 hour') AS h,
                   LATERAL (SELECT (u + extract(epoch FROM h)::bigint / 3600)::int AS r) AS x""",
                       [ids, now, now])
        cursor.execute(f"""
            INSERT INTO {SliMinute._meta.db_table} (minute, use_case_id, requests, bad, answered, slow)
            SELECT m, u, 10, (r %% 97 = 0)::int, 10 - (r %% 97 = 0)::int, {slow}::int[] FROM unnest(%s::bigint[]) AS u,
                   generate_series(%s::timestamptz - interval '80 hours', %s::timestamptz, interval '1 minute') AS m,
                   LATERAL (SELECT (u + extract(epoch FROM m)::bigint / 60)::int AS r) AS x""",
                       [ids, now, now])
        cursor.execute(f"ANALYZE {SliMinute._meta.db_table}")
        cursor.execute(f"ANALYZE {SliHour._meta.db_table}")
    return ids


def bench_evaluation(n_use_cases: int, repeat: int) -> dict:
    """The minute's evaluation with the settled hours' sums cached (sc-more) and without (the stamp renewed before
    each: every window re-read, as before), alternating in the same run."""
    from django.core.cache import cache

    from apps.core.stamped_cache import new_stamp
    from apps.gateway.models import SliHour, SliMinute
    from apps.gateway.sli import SETTLED_STAMP
    from apps.slos.evaluation import slos_evaluate

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    started = time.perf_counter()
    seed(n_use_cases, now)
    seeded_s = time.perf_counter() - started
    times, summary = {"cold": [], "cached": []}, None
    for i in range(2 * repeat + 1):
        mode = "cached" if i % 2 else "cold"
        if mode == "cold":
            cache.set(SETTLED_STAMP, new_stamp(), timeout=None)
        started = time.perf_counter()
        summary = slos_evaluate(now=now + timedelta(minutes=i))
        if i:  # the first (cold) pass warms the database's own caches
            times[mode].append((time.perf_counter() - started) * 1000)
    return {"use_cases": n_use_cases, "slos": summary.evaluated, "hour_rows": SliHour.objects.count(),
            "minute_rows": SliMinute.objects.count(), "seed_s": round(seeded_s, 1),
            "evaluate_ms_p50_uncached": round(statistics.median(times["cold"])),
            "evaluate_ms_max_uncached": round(max(times["cold"])),
            "evaluate_ms_p50": round(statistics.median(times["cached"])),
            "evaluate_ms_max": round(max(times["cached"]))}


def bench_pages(requests: int) -> dict:
    """The SLO overview (100 a page) and one use case's page (two SLOs, their 28-day budget charts), p50/p95."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from apps.slos.models import Slo

    admin = get_user_model().objects.filter(username="bench-admin").first() or \
        get_user_model().objects.create_user("bench-admin", is_staff=True, is_superuser=True)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(admin)
    use_case_id = Slo.objects.order_by("pk").values_list("use_case_id", flat=True).first()
    out = {}
    for name, url in (("overview", "/slos/"), ("use_case", f"/slos/use-cases/{use_case_id}/")):
        samples = []
        for i in range(requests + 3):
            started = time.perf_counter()
            response = client.get(url)
            if i >= 3:
                samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        samples.sort()
        out[f"{name}_ms_p50"] = round(statistics.median(samples), 1)
        out[f"{name}_ms_p95"] = round(samples[int(0.95 * (len(samples) - 1))], 1)
    return out


def rows_batch(key_id: int, team_id: int, use_case_ids: list[int], at: datetime, spread_s: int = 60) -> list[dict]:
    from apps.costs.ledger import DEFAULTS

    rows = []
    for i in range(500):
        failed = i % 100 == 0
        rows.append({**DEFAULTS, "occurred_at": at + timedelta(seconds=i % spread_s), "request_id": uuid.uuid4().hex,
                     "team_id": team_id, "feature": "bench", "use_case_id": use_case_ids[i % len(use_case_ids)],
                     "provider": "local", "model": "bench-model", "source": "gateway",
                     "input_tokens": 100, "output_tokens": 20, "cost": Decimal("0.0001"), "latency_ms": 800 + i * 7,
                     "status": "error" if failed else "ok", "error_type": "ProviderUnavailable" if failed else "",
                     "gateway_key_id": key_id, "alias": "chat", "deployment": "chat/bench", "upstream_ms": 700,
                     "ttft_ms": None, "fallbacks": 0})
    return rows


def bench_recorder(batches: int, spread_s: int) -> dict:
    from django.db import transaction

    from apps.accounts.models import Team
    from apps.costs.ledger import ledger_write
    from apps.gateway import sli, traffic

    team = Team.objects.get(slug="bench-slos")
    use_case_ids = list(range(10_000_000, 10_000_050))  # counts only: no use case rows are needed
    at = datetime.now(UTC).replace(second=0, microsecond=0)
    times = {"without": [], "with": []}
    for i in range(batches * 2 + 2):
        mode = "with" if i % 2 else "without"
        rows = rows_batch(999_999, team.pk, use_case_ids, at, spread_s)
        started = time.perf_counter()
        with transaction.atomic():
            inserted = ledger_write(rows)
            traffic.traffic_add(inserted)
            if mode == "with":
                sli.sli_add(inserted)
        elapsed = (time.perf_counter() - started) * 1000
        if i >= 2:  # the first pair warms the caches
            times[mode].append(elapsed)
    without, with_sli = statistics.median(times["without"]), statistics.median(times["with"])
    return {"batch_rows": 500, "use_cases": 50, "spread_s": spread_s, "batches_each": batches,
            "batch_ms_without_p50": round(without, 1), "batch_ms_with_p50": round(with_sli, 1),
            "added_ms_per_batch": round(with_sli - without, 1),
            "added_us_per_call": round((with_sli - without) * 1000 / 500, 1), "ratio": round(with_sli / without, 3)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--use-cases", type=int, default=500)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--no-recorder", action="store_true")
    args = parser.parse_args(argv)
    setup_django()
    evaluation = bench_evaluation(args.use_cases, args.repeat)
    pages = bench_pages(args.requests)
    if args.no_recorder:
        print(json.dumps({"load": os.getloadavg(), "evaluation": evaluation, "pages": pages}, indent=2))
        return 0
    recorder = [bench_recorder(args.batches, spread) for spread in (60, 300)]  # a batch of 1 minute; of 5 (worst)
    print(json.dumps({"load": os.getloadavg(), "evaluation": evaluation, "pages": pages, "recorder": recorder},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
