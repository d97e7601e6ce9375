"""The task-success-drop detection rule at a realistic size (issue #15, ADR 0102), what the gateway error rule's
key series add to the recorder (ADR 0103), and the groundedness-drop rule (ADR 0121).

    .venv/bin/python -m bench.incident_live_quality [--use-cases 500] [--raw 1000000] [--per-tick 1500] [--ticks 10]
                                                    [--only groundedness]

1. Rule: `--use-cases` use cases with live feedback, their counts as retention keeps them (hourly buckets for
   7 days + 2 days, 5-minute buckets for 2 days: written with generate_series), and `--raw` raw feedback rows
   (evals `Feedback`, already folded: the cursor is at their end). Each tick adds `--per-tick` new feedback rows
   (30 s of feedback at 50 a second) and runs the beat's `rules_evaluate()` with one enabled `task_success_drop`
   rule (60-minute window; five use cases really drop): fold + read + the findings (they fold after the first
   tick). Timed per tick (p50, max), with the fold and the read alone, and — for comparison — the same test
   computed straight from the raw feedback (one grouped query over 7 days and the window), which the rule never
   runs.
2. Recorder: batches of 500 gateway ledger rows over 300 keys within one minute, written as the recorder writes
   them (`ledger_write` + `traffic_add` + `sli_add`), where 0 %, 50 % or 100 % of the keys are bound to no use
   case, their calls counted under the key series (now) or skipped (before: `sli_add` given only the bound
   keys' rows), alternating. Median per batch, and its ratio to the all-bound batch.

3. Groundedness (ADR 0121): `--use-cases` use cases, each linked to its own collection, their
   `GroundednessCount` rows as retention keeps them, and `--raw` usage events already folded (one in ten scored,
   the rest gateway calls without a score). Each tick adds 30 s of traffic: `--per-tick` unscored ledger rows and
   a third as many scored RAG answers (no use case on the row: attributed through the collection links), then runs
   `rules_evaluate()` with one enabled `groundedness_drop` rule (60-minute window; five use cases really drop):
   the feedback fold and the ledger fold + the read + the findings. Timed per tick, with the ledger fold and the
   read alone.

Database `portal_bench_incident_live` (bench/common.py). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bench.common import setup_django

DATABASE = "portal_bench_incident_live"
DROPPING = 5


def seed(n_use_cases: int, n_raw: int, now: datetime) -> list[int]:
    from django.db import connection

    from apps.accounts.models import Team
    from apps.evals.models import Feedback
    from apps.incidents.models import (
        DetectionRule,
        FeedbackCount,
        FeedbackFoldCursor,
        IncidentSuggestion,
        Signal,
    )
    from apps.reviews.models import UseCase

    team, _ = Team.objects.get_or_create(slug="bench-live", defaults={"name": "Bench live"})
    IncidentSuggestion.objects.filter(team=team).delete()
    UseCase.objects.filter(team=team).delete()
    ids = [u.pk for u in UseCase.objects.bulk_create(
        [UseCase(team=team, title=f"bench use case {i}", purpose="bench") for i in range(n_use_cases)])]
    DetectionRule.objects.filter(signal=Signal.TASK_SUCCESS_DROP).delete()
    DetectionRule.objects.update(enabled=False)
    DetectionRule.objects.create(name="bench drop", signal=Signal.TASK_SUCCESS_DROP, threshold=0.1, min_requests=30,
                                 window_minutes=60)
    table, fb = FeedbackCount._meta.db_table, Feedback._meta.db_table
    hour, five = now.replace(minute=0, second=0, microsecond=0), now.replace(second=0, microsecond=0)
    five = five.replace(minute=five.minute - five.minute % 5)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table}")
        cursor.execute(f"TRUNCATE {fb} CASCADE")
        # hourly: 9 days × 24 h, 40 feedbacks an hour at 90 %; 5-minute: 2 days, 3-4 a bucket (5 use cases drop)
        cursor.execute(f"""
            INSERT INTO {table} (span_minutes, start, use_case_id, total, good)
            SELECT 60, %s - make_interval(hours => h), u, 40, 36
              FROM unnest(%s::bigint[]) AS u, generate_series(1, 216) AS h""", [hour, ids])
        cursor.execute(f"""
            INSERT INTO {table} (span_minutes, start, use_case_id, total, good)
            SELECT 5, %s - make_interval(mins => 5 * b), u, 4,
                   CASE WHEN u = ANY(%s) AND b < 12 THEN 2 ELSE 4 END
              FROM unnest(%s::bigint[]) AS u, generate_series(0, 575) AS b""", [five, ids[:DROPPING], ids])
        cursor.execute(f"""
            INSERT INTO {fb} (request_id, trace_id, thumbs, comment, correction, output, prompt_name, use_case_id,
                              success, overridden, created_by_label, created_at)
            SELECT 'bench-' || g, '', 'up', '', '', '', '', (%s::bigint[])[1 + g %% %s], (g / %s) %% 10 <> 0, false,
                   'bench',
                   %s - make_interval(secs => g * 0.6)
              FROM generate_series(1, %s) AS g""", [ids, len(ids), len(ids), now - timedelta(minutes=1), n_raw])
        cursor.execute(f"ANALYZE {table}")
        cursor.execute(f"ANALYZE {fb}")
    last = Feedback.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    FeedbackFoldCursor.objects.update_or_create(pk=1, defaults={"last_id": last})
    return ids


def new_feedback(ids: list[int], n: int, at: datetime) -> None:
    from apps.evals.models import Feedback

    Feedback.objects.bulk_create([Feedback(request_id=uuid.uuid4().hex, use_case_id=ids[i % len(ids)],
                                           success=(i // len(ids)) % 10 != 0, thumbs="up",
                                           created_at=at - timedelta(seconds=10))
                                  for i in range(n)])


def naive(now: datetime, window_minutes: int) -> float:
    """The same counts straight from the raw feedback (what the rule avoids): one grouped query."""
    from django.db.models import Count, Q

    from apps.evals.models import Feedback

    started = time.perf_counter()
    since = now - timedelta(minutes=window_minutes)
    list(Feedback.objects.filter(created_at__gte=since - timedelta(days=7), use_case_id__isnull=False)
         .values("use_case_id").annotate(recent=Count("id", filter=Q(created_at__gte=since)),
                                          recent_good=Count("id", filter=Q(created_at__gte=since, success=True)),
                                          total=Count("id"), good=Count("id", filter=Q(success=True))).order_by())
    return (time.perf_counter() - started) * 1000


def bench_rule(n_use_cases: int, n_raw: int, per_tick: int, ticks: int) -> dict:
    from apps.incidents import detection, live_quality
    from apps.incidents.models import IncidentSuggestion

    now = datetime.now(UTC)
    t = time.perf_counter()
    ids = seed(n_use_cases, n_raw, now)
    seeded_s = time.perf_counter() - t
    evaluate, fold, read, raw = [], [], [], []
    for i in range(ticks):
        tick = now + timedelta(seconds=30 * (i + 1))
        new_feedback(ids, per_tick, tick)
        started = time.perf_counter()
        detection.rules_evaluate(tick)
        evaluate.append((time.perf_counter() - started) * 1000)
        new_feedback(ids, per_tick, tick)
        started = time.perf_counter()
        live_quality.feedback_fold(tick)
        fold.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        drops = live_quality.task_success_drops(now=tick, window_minutes=60, min_total=30, min_drop=0.1)
        read.append((time.perf_counter() - started) * 1000)
        raw.append(naive(tick, 60))
    from apps.incidents.models import FeedbackCount

    return {"use_cases": n_use_cases, "count_rows": FeedbackCount.objects.count(), "raw_feedback_rows": n_raw,
            "new_feedback_per_tick": per_tick, "ticks": ticks, "seed_s": round(seeded_s, 1),
            "drops_found": len(drops), "suggestions": IncidentSuggestion.objects.filter(rule__name="bench drop").count(),
            "evaluate_ms_p50": round(statistics.median(evaluate), 1), "evaluate_ms_max": round(max(evaluate), 1),
            "first_tick_ms": round(evaluate[0], 1),
            "fold_ms_p50": round(statistics.median(fold), 1), "read_ms_p50": round(statistics.median(read), 1),
            "raw_scan_ms_p50": round(statistics.median(raw), 1)}


def rows_batch(team_id: int, key_ids: list[int], bound: set[int], at: datetime) -> list[dict]:
    from apps.costs.ledger import DEFAULTS

    rows = []
    for i in range(500):
        key = key_ids[i % len(key_ids)]
        failed = i % 100 == 0
        rows.append({**DEFAULTS, "occurred_at": at + timedelta(seconds=i % 60), "request_id": uuid.uuid4().hex,
                     "team_id": team_id, "feature": "bench", "use_case_id": 10_000_000 + key if key in bound else None,
                     "provider": "local", "model": "bench-model", "source": "gateway", "input_tokens": 100,
                     "output_tokens": 20, "cost": Decimal("0.0001"), "latency_ms": 800 + i * 7,
                     "status": "error" if failed else "ok", "error_type": "ProviderUnavailable" if failed else "",
                     "gateway_key_id": key, "alias": "chat", "deployment": "chat/bench", "upstream_ms": 700,
                     "ttft_ms": None, "fallbacks": 0})
    return rows


def bench_recorder(batches: int) -> list[dict]:
    from django.db import transaction

    from apps.accounts.models import Team
    from apps.costs.ledger import ledger_write
    from apps.gateway import sli, traffic

    team = Team.objects.get(slug="bench-live")
    key_ids = list(range(20_000_000, 20_000_300))
    at = datetime.now(UTC).replace(second=0, microsecond=0)
    # (share of keys bound to no use case, whether their calls are counted: False is what the recorder did before)
    modes = ((0.0, True), (0.5, False), (0.5, True), (1.0, False), (1.0, True))
    times: dict[tuple, list[float]] = {mode: [] for mode in modes}
    for i in range((batches + 1) * len(modes)):
        share, counted = mode = modes[i % len(modes)]
        bound = set(key_ids[int(len(key_ids) * share):])  # the first `share` of the keys are bound to no use case
        rows = rows_batch(team.pk, key_ids, bound, at)
        started = time.perf_counter()
        with transaction.atomic():
            inserted = ledger_write(rows)
            traffic.traffic_add(inserted)
            sli.sli_add(inserted if counted else [r for r in inserted if r.get("use_case_id") is not None])
        if i >= len(modes):  # the first round warms the caches
            times[mode].append((time.perf_counter() - started) * 1000)
    base = statistics.median(times[(0.0, True)])
    return [{"keys_without_use_case": f"{share:.0%}", "their_calls": "counted" if counted else "skipped (before)",
             "batch_rows": 500, "keys": len(key_ids), "batches": batches,
             "batch_ms_p50": round(statistics.median(times[(share, counted)]), 1),
             "ratio_to_all_bound": round(statistics.median(times[(share, counted)]) / base, 3)}
            for share, counted in modes]


def seed_groundedness(n_use_cases: int, n_raw: int, now: datetime) -> tuple[list[int], list[int]]:
    """Use cases each linked to a collection of their own, their folded groundedness counts, `n_raw` folded
    usage events (one in ten scored). Returns (use case ids, collection ids), in step."""
    from django.db import connection

    from apps.accounts.models import Team
    from apps.costs.models import UsageEvent
    from apps.incidents.models import (
        DetectionRule,
        GroundednessCount,
        IncidentSuggestion,
        LedgerFoldCursor,
        Signal,
    )
    from apps.llm.models import Model
    from apps.llm.services import catalog_seed_local
    from apps.rag.models import Collection
    from apps.reviews.models import UseCase, UseCaseCollection

    catalog_seed_local()
    team, _ = Team.objects.get_or_create(slug="bench-ground", defaults={"name": "Bench groundedness"})
    IncidentSuggestion.objects.filter(team=team).delete()
    UseCase.objects.filter(team=team).delete()
    Collection.objects.filter(team=team).delete()
    minilm = Model.objects.get(name="local-minilm")
    use_cases = UseCase.objects.bulk_create(
        [UseCase(team=team, title=f"bench grounded use case {i}", purpose="bench") for i in range(n_use_cases)])
    collections = Collection.objects.bulk_create(
        [Collection(team=team, name=f"bench collection {i}", embedding_model=minilm, embedding_dimensions=384)
         for i in range(n_use_cases)])
    UseCaseCollection.objects.bulk_create([UseCaseCollection(use_case=u, collection=c)
                                           for u, c in zip(use_cases, collections, strict=True)])
    ids, cids = [u.pk for u in use_cases], [c.pk for c in collections]
    DetectionRule.objects.update(enabled=False)
    DetectionRule.objects.filter(signal=Signal.GROUNDEDNESS_DROP).delete()
    DetectionRule.objects.create(name="bench groundedness", signal=Signal.GROUNDEDNESS_DROP, threshold=0.1,
                                 min_requests=30, window_minutes=60)
    table, ledger = GroundednessCount._meta.db_table, UsageEvent._meta.db_table
    hour, five = now.replace(minute=0, second=0, microsecond=0), now.replace(second=0, microsecond=0)
    five = five.replace(minute=five.minute - five.minute % 5)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table}")
        cursor.execute(f"DELETE FROM {ledger} WHERE request_id LIKE 'bench-g-%%'")
        # hourly: 9 days × 24 h, 20 answers an hour around 0.9; 5-minute: 2 days, 4 a bucket (5 use cases at 0.55
        # for the last hour)
        cursor.execute(f"""
            INSERT INTO {table} (span_minutes, start, use_case_id, answers, total, total_sq)
            SELECT 60, %s - make_interval(hours => h), u, 20, 18.0, 16.4
              FROM unnest(%s::bigint[]) AS u, generate_series(1, 216) AS h""", [hour, ids])
        cursor.execute(f"""
            INSERT INTO {table} (span_minutes, start, use_case_id, answers, total, total_sq)
            SELECT 5, %s - make_interval(mins => 5 * b), u, 4,
                   CASE WHEN u = ANY(%s) AND b < 12 THEN 2.2 ELSE 3.6 END,
                   CASE WHEN u = ANY(%s) AND b < 12 THEN 1.3 ELSE 3.28 END
              FROM unnest(%s::bigint[]) AS u, generate_series(0, 575) AS b""",
                       [five, ids[:DROPPING], ids[:DROPPING], ids])
        _ledger_rows(cursor, cids, n_raw, now - timedelta(minutes=1), "bench-g-old", spread_s=0.6)
        cursor.execute(f"ANALYZE {table}")
        cursor.execute(f"ANALYZE {ledger}")
    last = UsageEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    LedgerFoldCursor.objects.update_or_create(pk=1, defaults={"last_id": last})
    return ids, cids


def _ledger_rows(cursor, collection_ids: list[int], n: int, at: datetime, prefix: str, spread_s: float,
                 scored_every: int = 10) -> None:
    """`n` usage events before `at`: every `scored_every`-th a RAG answer with a score and a collection, the rest
    gateway calls without one (what the partial index leaves out)."""
    cursor.execute("""
        INSERT INTO costs_usageevent (occurred_at, ingested_at, request_id, feature, tenant, provider, model, operation,
                                      prompt_name, source, input_tokens, output_tokens, cached_input_tokens,
                                      reasoning_tokens, latency_ms, status, error_type, outcome, collection_id,
                                      groundedness)
        SELECT %s - make_interval(secs => g * %s), %s - make_interval(secs => g * %s), %s || '-' || g, 'bench', '',
               'local', 'bench-model', 'chat', '', CASE WHEN g %% %s = 0 THEN 'rag' ELSE 'gateway' END, 100, 20, 0, 0,
               800, 'ok', '', 'unknown',
               CASE WHEN g %% %s = 0 THEN (%s::bigint[])[1 + (g / %s) %% %s] END,
               CASE WHEN g %% %s = 0 THEN 0.7 + 0.3 * ((g / %s) %% 3) / 2.0 END
          FROM generate_series(1, %s) AS g""",
                   [at, spread_s, at, spread_s, f"{prefix}-{uuid.uuid4().hex[:8]}", scored_every, scored_every,
                    collection_ids, scored_every, len(collection_ids), scored_every, scored_every, n])


def bench_groundedness(n_use_cases: int, n_raw: int, per_tick: int, ticks: int) -> dict:
    from django.db import connection

    from apps.incidents import detection, live_quality
    from apps.incidents.models import GroundednessCount, IncidentSuggestion

    now = datetime.now(UTC)
    t = time.perf_counter()
    _ids, cids = seed_groundedness(n_use_cases, n_raw, now)
    seeded_s = time.perf_counter() - t
    evaluate, fold, read = [], [], []
    scored_every = 4  # per tick: per_tick rows of which a quarter scored
    for i in range(ticks):
        tick = now + timedelta(seconds=30 * (i + 1))
        with connection.cursor() as cursor:
            _ledger_rows(cursor, cids, per_tick, tick - timedelta(seconds=10), f"bench-g-{i}a", 0.02, scored_every)
        started = time.perf_counter()
        detection.rules_evaluate(tick)
        evaluate.append((time.perf_counter() - started) * 1000)
        with connection.cursor() as cursor:
            _ledger_rows(cursor, cids, per_tick, tick - timedelta(seconds=10), f"bench-g-{i}b", 0.02, scored_every)
        started = time.perf_counter()
        folded = live_quality.ledger_fold(tick)
        fold.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        drops = live_quality.groundedness_drops(now=tick, window_minutes=60, min_total=30, min_drop=0.1)
        read.append((time.perf_counter() - started) * 1000)
    return {"use_cases": n_use_cases, "count_rows": GroundednessCount.objects.count(), "raw_ledger_rows": n_raw,
            "ledger_rows_per_tick": per_tick, "scored_per_tick": folded, "ticks": ticks,
            "seed_s": round(seeded_s, 1), "drops_found": len(drops),
            "suggestions": IncidentSuggestion.objects.filter(rule__name="bench groundedness").count(),
            "evaluate_ms_p50": round(statistics.median(evaluate), 1), "evaluate_ms_max": round(max(evaluate), 1),
            "first_tick_ms": round(evaluate[0], 1),
            "ledger_fold_ms_p50": round(statistics.median(fold), 1),
            "read_ms_p50": round(statistics.median(read), 1)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--use-cases", type=int, default=500)
    parser.add_argument("--raw", type=int, default=1_000_000)
    parser.add_argument("--per-tick", type=int, default=1500)
    parser.add_argument("--ticks", type=int, default=10)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--only", choices=("groundedness",), default=None)
    args = parser.parse_args(argv)
    setup_django(DATABASE)
    groundedness = bench_groundedness(args.use_cases, args.raw, args.per_tick, args.ticks)
    if args.only == "groundedness":
        print(json.dumps({"groundedness": groundedness}, indent=2))
        return 0
    rule = bench_rule(args.use_cases, args.raw, args.per_tick, args.ticks)
    print(json.dumps({"rule": rule, "recorder": bench_recorder(args.batches), "groundedness": groundedness},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
