"""Dashboard server time over 10 million usage events across 90 days.

The events are generated straight in SQL (generate_series) into their own database, `portal_bench_costs`
(so the other benchmarks' raw-event pages are not slowed by ten million rows), then the rollups are built
from them day by day with the same rebuild the nightly job and re-pricing use. Each chart endpoint is then
timed through Django's full request stack (test Client, DEBUG off) for an admin (every team) and a product
manager (two teams), over the default 30 days and over all 90. Goal: each chart under 300 ms.

    python -m bench.costs_dashboard [--events 10000000] [--requests 15]
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

from bench.common import summary_ms
from bench.costs_common import setup

DATABASE = "portal_bench_costs"
CHARTS = ["spend", "drivers", "tokens", "outcomes", "cache", "gatewaycache", "cacheusecase", "forecast", "whatif"]
TEAMS = ["support-ai", "search", "sales-assist", "internal-tools", "risk", "marketing"]
MODELS = [  # name, input, cached input, output ($ per 1M tokens)
    ("gpt-4o-mini", "0.15", "0.075", "0.60"), ("gpt-4o", "2.50", "1.25", "10.00"),
    ("gpt-4.1-mini", "0.40", "0.10", "1.60"), ("gpt-4.1-nano", "0.10", "0.025", "0.40"),
    ("claude-sonnet-4", "3.00", "0.30", "15.00"), ("o4-mini", "1.10", "0.275", "4.40"),
    ("gemini-2.5-flash", "0.30", "0.075", "2.50"), ("acme-ft-llama", None, None, None),  # unpriced
]

# Every 8th ok call is a response-cache hit (no tokens, cost 0, cache_saving = what it would have cost); three
# features in four belong to a use case (use_case_id 900000 + feature), the gateway's included.
PRICED = """round(((g.tin - g.tin / 3) * (%(input)s::numeric[])[g.m + 1] + (g.tin / 3) * (%(cached)s::numeric[])[g.m + 1]
                  + g.tout * (%(output)s::numeric[])[g.m + 1]) / 1000000, 8)"""
GENERATE = """
INSERT INTO costs_usageevent (occurred_at, request_id, team_id, feature, use_case_id, tenant, provider, model,
    operation, prompt_name, prompt_version, source, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens,
    cost, price_id, latency_ms, status, error_type, outcome, ingested_at, cache_hit, cache_saving)
SELECT g.at, 'bench-' || g.i, (%(team_ids)s::bigint[])[g.f / 4 + 1], 'feature-' || g.f,
       CASE WHEN g.f %% 4 <> 1 THEN 900000 + g.f END, 'tenant-' || g.t,
       'openai', (%(models)s::text[])[g.m + 1], 'chat', 'prompt-' || g.f,
       1 + (g.at > %(switch)s::timestamptz + g.f * interval '1 day')::int,
       CASE WHEN g.i %% 100 < 6 THEN 'eval' WHEN g.i %% 100 < 9 THEN 'playground'
            ELSE (ARRAY['api', 'api', 'rag', 'gateway'])[1 + g.f %% 4] END,
       CASE WHEN g.hit THEN 0 ELSE g.tin END, CASE WHEN g.hit THEN 0 ELSE g.tout END,
       CASE WHEN g.hit THEN 0 ELSE g.tin / 3 END, 0,
       CASE WHEN (%(input)s::numeric[])[g.m + 1] IS NULL THEN NULL WHEN g.hit THEN 0 ELSE {priced} END,
       (%(price_ids)s::bigint[])[g.m + 1], 200 + g.tout * 10,
       CASE WHEN g.i %% 97 = 0 THEN 'error' ELSE 'ok' END, '',
       (ARRAY['unknown', 'unknown', 'success', 'success', 'success', 'failure'])[1 + (g.i %% 7) %% 6], g.at,
       g.hit, CASE WHEN g.hit AND (%(input)s::numeric[])[g.m + 1] IS NOT NULL THEN {priced} END
FROM (
    SELECT i, f, t, (f * 2 + (hashint4(i) & 3 = 0)::int) %% %(model_count)s AS m, at,
           (300 + (hashint4(i * 7) & 4095) * (1 + f %% 3))::int AS tin, (20 + (hashint4(i * 13) & 511))::int AS tout,
           (hashint4(i * 11) & 7) = 0 AND i %% 97 <> 0 AS hit
    FROM (
        SELECT i, (hashint4(i) & 2147483647) %% 24 AS f,
               floor(40 * power(((hashint4(i * 3) & 2147483647) %% 10000) / 10000.0, 2))::int AS t,
               %(start)s::timestamptz + (i::float8 / %(total)s) * interval '90 days'
                 + ((hashint4(i * 5) & 2147483647) %% 3600) * interval '1 second' AS at
        FROM generate_series(%(first)s::int, %(last)s::int) AS i
    ) s
) g
""".replace("{priced}", PRICED)


def clear() -> None:
    from django.db import connection

    with connection.cursor() as c:
        for table in ("costs_budgetreservation", "costs_budgetalert", "costs_budgetperiod", "costs_budget",
                      "costs_usagetokenhistogram", "costs_usagerollup", "costs_usageevent"):
            c.execute(f"TRUNCATE {table} CASCADE")


def generate(events: int, rebuild: bool = False) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from apps.accounts.models import Role, Team
    from apps.accounts.services import membership_set, team_create
    from apps.core.request_context import acting_as
    from apps.costs.models import Price, UsageEvent
    from apps.costs.rollups import day_start, rollups_rebuild
    from apps.costs.services import budget_create, price_set

    with acting_as(None):
        teams = [Team.objects.filter(slug=s).first() or team_create(name=s.replace("-", " ").title(), slug=s)
                 for s in TEAMS]
        User = get_user_model()
        admin, _ = User.objects.get_or_create(username="bench-admin", defaults={"is_staff": True,
                                                                                 "is_superuser": True})
        pm, _ = User.objects.get_or_create(username="bench-pm")
        for team in teams[:2]:
            membership_set(team=team, user=pm, role=Role.VIEWER)
        owner, _ = User.objects.get_or_create(username="bench-owner")
        for team in teams:
            membership_set(team=team, user=owner, role=Role.OWNER)
        start_price = day_start(timezone.now()) - timedelta(days=400)
        prices = {}
        for name, inp, cached, out in MODELS:
            if inp is None:
                continue
            prices[name] = (Price.objects.filter(model_name=name).first()
                            or price_set(model_name=name, input_per_mtok=inp, output_per_mtok=out,
                                         cached_input_per_mtok=cached, valid_from=start_price))
    existing = UsageEvent.objects.count()
    timings = {}
    end = day_start(timezone.now()) + timedelta(days=1)
    start = end - timedelta(days=90)
    with connection.cursor() as c:
        c.execute("SELECT count(DISTINCT granularity) FROM costs_usagerollup")
        cubes = c.fetchone()[0]
    stale_rollups = existing >= events and (cubes < 4 or rebuild)  # generated before a cube (or dimension) was added
    if existing < events:
        chunk = 1_000_000
        started = time.perf_counter()
        params = {
            "team_ids": [t.pk for t in teams], "models": [m[0] for m in MODELS],
            "input": [m[1] for m in MODELS], "cached": [m[2] for m in MODELS], "output": [m[3] for m in MODELS],
            "price_ids": [prices[m[0]].pk if m[0] in prices else None for m in MODELS],
            "model_count": len(MODELS), "start": start, "total": events,
            "switch": start + timedelta(days=40),  # each feature ships prompt v2 on its own day
        }
        for first in range(existing + 1, events + 1, chunk):
            with connection.cursor() as c:
                c.execute(GENERATE, {**params, "first": first, "last": min(events, first + chunk - 1)})
            print(f"  {min(events, first + chunk - 1):,} events", flush=True)
        with connection.cursor() as c:
            c.execute("VACUUM ANALYZE costs_usageevent")
        timings["generate_s"] = round(time.perf_counter() - started, 1)
    if existing < events or stale_rollups:
        started = time.perf_counter()
        rollups_rebuild(start.date(), (end - timedelta(days=1)).date(),
                        on_day=lambda d: print(f"  rollups {d}", flush=True) if d.day == 1 else None)
        with connection.cursor() as c:
            c.execute("VACUUM ANALYZE costs_usagerollup")
            c.execute("VACUUM ANALYZE costs_usagetokenhistogram")
        timings["rollups_s"] = round(time.perf_counter() - started, 1)
    with acting_as(None):
        for team, amount in zip(teams, [4000, 3000, 2500, 2000, 1500, 1000], strict=True):
            if not team.budgets.exists():
                budget_create(actor=owner, name=f"{team.name} monthly", team=team, amount=amount)
    with connection.cursor() as c:
        c.execute("SELECT count(*) FROM costs_usagerollup WHERE granularity = 'day'")
        day_rows = c.fetchone()[0]
        c.execute("SELECT count(*) FROM costs_usagerollup WHERE granularity = 'hour'")
        hour_rows = c.fetchone()[0]
        c.execute("SELECT count(*) FROM costs_usagetokenhistogram")
        hist_rows = c.fetchone()[0]
        c.execute("SELECT pg_size_pretty(pg_total_relation_size('costs_usageevent')), "
                  "pg_size_pretty(pg_total_relation_size('costs_usagerollup'))")
        sizes = c.fetchone()
    return {"events": UsageEvent.objects.count() if existing < events else existing, "day_rollup_rows": day_rows,
            "hour_rollup_rows": hour_rows, "histogram_rows": hist_rows, "events_size": sizes[0],
            "rollups_size": sizes[1], **timings, "admin": admin, "pm": pm}


def run(events: int = 10_000_000, requests: int = 15, fresh: bool = False, rebuild: bool = False) -> dict:
    setup(DATABASE)
    from django.test import Client

    # the charts this tree serves (a branch's "before" lacks its new ones)
    from apps.costs.views import CHARTS as served

    if fresh:
        clear()
    data = generate(events, rebuild)
    admin, pm = data.pop("admin"), data.pop("pm")
    results = {"dataset": data, "goal_ms": 300, "charts": {}}
    for who, user in (("admin", admin), ("pm", pm)):
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        for window, query in (("30d", {}), ("90d", {"start": (_today() - timedelta(days=89)).isoformat(),
                                                      "end": _today().isoformat()})):
            for name in [c for c in CHARTS if c in served]:
                q = dict(query)
                if name == "whatif":
                    q.update({"whatif_feature": "feature-1", "whatif_model": "gpt-4.1-nano"})
                url = f"/costs/charts/{name}/"
                for _ in range(2):  # warm
                    assert client.get(url, q).status_code == 200
                samples = []
                for _ in range(requests):
                    started = time.perf_counter()
                    response = client.get(url, q)
                    samples.append(time.perf_counter() - started)
                    assert response.status_code == 200
                results["charts"][f"{who} {window} {name}"] = summary_ms(samples)
        # tenant views: ranked by tenant (team-and-tenant cube), and tenant x feature (the full cube)
        for label, q in (("90d spend by tenant", {"group_by": "tenant"}),
                         ("90d spend by tenant, one feature", {"group_by": "tenant", "feature": "feature-3"})):
            q = {**q, "start": (_today() - timedelta(days=89)).isoformat(), "end": _today().isoformat()}
            client.get("/costs/charts/spend/", q)
            samples = []
            for _ in range(requests):
                started = time.perf_counter()
                assert client.get("/costs/charts/spend/", q).status_code == 200
                samples.append(time.perf_counter() - started)
            results["charts"][f"{who} {label}"] = summary_ms(samples)
        started = time.perf_counter()
        assert client.get("/costs/").status_code == 200
        results["charts"][f"{who} 30d whole page"] = {"ms": round((time.perf_counter() - started) * 1000, 1)}
    worst = max(v.get("p95_ms", v.get("ms", 0)) for v in results["charts"].values())
    results["worst_p95_ms"] = worst
    return results


def _today():
    from django.utils import timezone

    return timezone.now().date()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--requests", type=int, default=15)
    parser.add_argument("--fresh", action="store_true", help="delete the generated ledger first")
    parser.add_argument("--rebuild", action="store_true",
                        help="rebuild the rollups from the kept ledger (after a rollup dimension was added)")
    args = parser.parse_args()
    import json

    print(json.dumps(run(events=args.events, requests=args.requests, fresh=args.fresh,
                         rebuild=args.rebuild), indent=2, default=str))
