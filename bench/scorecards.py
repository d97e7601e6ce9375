"""Scorecard refresh time for 500 use cases over what 10 M gateway events leave behind, and the portfolio page's
p50/p95 (Django's full request stack, no network), in its own database `portal_bench_scorecards`.

What it generates (bulk inserts, once; reused when present), spread over the last 84 days (the refresh reads 84
days: eight 28-day trend windows a week apart, plus the window before the oldest for change-mode KPIs):
- 20 teams, 500 active use cases (tiers low/elevated/high in turn), 2 gateway keys each;
- TrafficDaily: one row per key and day (84,000 rows) summing 10,000,000 calls (≈ 119 per key and day);
- LatencyDaily: 12 total-latency bins per key and day (1,008,000 rows);
- EndUserDaily: 25 distinct end users per use case and day (1,050,000 rows), and the same over the 147 days before
  (the adoption growth compares the 13 weeks to each trend point with the 13 before: 231 days, 2,887,500 rows);
- TokensDaily: one row per use case and day, 20,000 calls' token bins (42,000 rows);
- an availability SLO on a fifth of the use cases, evaluated once (its SLI counts are not generated: the scorecard
  reads the SLO's last evaluation and the hourly counts of the trend, few rows);
- Feedback: 2 % of the calls, 200,000 rows with use_case_id (success, overridden);
- UsageEvent: only the calls with guardrail actions, 0.1 % = 10,000 rows (the partial index is all the refresh
  reads of the ledger; the other 9.99 M ledger rows are not inserted);
- 100 incidents naming use cases (Sev2, half naming a prompt version).
No prompts, eval runs or RAG collections: those KPIs read a few rows per linked prompt/collection.

Refresh, before and after the incremental refresh (sc-more), in the same run: the full refresh (every use case:
what each 4-minute pass did before) against the beat's pass `scorecards_refresh_due` when 10 % of the use cases had
a gateway call since their last computation (and with none: the cost of finding out).

    python -m bench.scorecards
"""

from __future__ import annotations

import json
import os
import random
import time
from datetime import timedelta
from decimal import Decimal

from bench.common import machine, now_utc, setup_django, summary_ms

USE_CASES = 500
KEYS_PER_USE_CASE = 2
DAYS = 84
USER_DAYS = 231  # growth: 2 × 13 weeks before each of the 8 weekly trend points
EVENTS = 10_000_000


def _generate() -> None:
    from django.utils import timezone

    from apps.accounts.models import Team
    from apps.costs.models import UsageEvent
    from apps.costs.rollups import token_bin
    from apps.evals.models import Feedback
    from apps.gateway.models import GatewayKey, LatencyDaily, TrafficDaily
    from apps.incidents.models import Incident
    from apps.reviews.models import UseCase

    rng = random.Random(500)
    teams = Team.objects.bulk_create([Team(name=f"Bench team {i}", slug=f"bench-team-{i}") for i in range(20)])
    tiers = ["low", "elevated", "high"]
    use_cases = UseCase.objects.bulk_create([
        UseCase(team=teams[i % 20], title=f"Bench use case {i:03d}", purpose="bench", state="active",
                tier=tiers[i % 3]) for i in range(USE_CASES)])
    keys = GatewayKey.objects.bulk_create([
        GatewayKey(team=uc.team, name=f"bench-{uc.pk}-{k}", feature=f"bench-{uc.pk}", use_case_id=uc.pk,
                   key_id=f"b{uc.pk:06d}{k}", key_hash=f"{uc.pk:060d}{k:04d}")
        for uc in use_cases for k in range(KEYS_PER_USE_CASE)])
    today = timezone.now().date()
    per_key_day = EVENTS // (len(keys) * DAYS)
    traffic, latency = [], []
    for key in keys:
        for back in range(DAYS):
            day = today - timedelta(days=back)
            n = per_key_day + rng.randint(-5, 5)
            traffic.append(TrafficDaily(day=day, team_id=key.team_id, gateway_key_id=key.pk, model="m",
                                        requests=n, errors=rng.randint(0, 2), refused=0, input_tokens=n * 800,
                                        output_tokens=n * 150, cost=Decimal(n) * Decimal("0.002")))
            for b in range(12):
                latency.append(LatencyDaily(day=day, team_id=key.team_id, gateway_key_id=key.pk, measure="total",
                                            bin=token_bin(300) + 2 * b, requests=max(1, n // 12)))
    TrafficDaily.objects.bulk_create(traffic, batch_size=10_000)
    LatencyDaily.objects.bulk_create(latency, batch_size=20_000)
    del traffic, latency
    _end_users(rng, use_cases, keys, today, range(DAYS))
    now = timezone.now()
    feedback = [Feedback(use_case_id=use_cases[i % USE_CASES].pk, request_id=f"bench-{i}", success=rng.random() < 0.8,
                         overridden=rng.random() < 0.1, created_at=now - timedelta(days=rng.randint(0, DAYS - 1)))
                for i in range(EVENTS // 50)]
    Feedback.objects.bulk_create(feedback, batch_size=20_000)
    events = [UsageEvent(occurred_at=now - timedelta(days=rng.randint(0, DAYS - 1)), request_id=f"bench-guard-{i}",
                         model="m", source="gateway", gateway_key_id=keys[i % len(keys)].pk,
                         guardrail_actions=[{"direction": "input", "check": "pii", "action": "redact"}])
              for i in range(EVENTS // 1000)]
    UsageEvent.objects.bulk_create(events, batch_size=10_000)
    for i in range(100):
        uc = use_cases[rng.randrange(USE_CASES)]
        detected = now - timedelta(days=rng.randint(0, DAYS - 1))
        incident = Incident.objects.create(title=f"bench {i}", kind="other", severity=2, team=uc.team,
                                           detected_at=detected, mitigated_at=detected + timedelta(minutes=50),
                                           prompt_versions=["bench/p@v1"] if i % 2 else [])
        incident.use_cases.add(uc)


def _end_users(rng, use_cases, keys, today, days) -> None:
    from apps.gateway.models import EndUserDaily

    key_of = {}
    for key in keys:
        key_of.setdefault(key.use_case_id, key.pk)
    users = []
    for uc in use_cases:
        for back in days:
            users += [EndUserDaily(day=today - timedelta(days=back), gateway_key_id=key_of[uc.pk], use_case_id=uc.pk,
                                   user_hash=f"{u:032x}") for u in rng.sample(range(200), 25)]
        if len(users) > 100_000:
            EndUserDaily.objects.bulk_create(users, batch_size=20_000)
            users = []
    EndUserDaily.objects.bulk_create(users, batch_size=20_000)


def _generate_sc_more() -> None:
    """What the sc-more KPIs read, added to a database generated before them: token bins, the older end users,
    availability SLOs (evaluated once)."""
    from django.utils import timezone

    from apps.costs.rollups import token_bin
    from apps.gateway.models import GatewayKey, TokensDaily
    from apps.reviews.models import UseCase
    from apps.slos.evaluation import slos_evaluate
    from apps.slos.models import Slo

    rng = random.Random(16)
    use_cases = list(UseCase.objects.filter(title__startswith="Bench use case").order_by("pk"))
    keys = list(GatewayKey.objects.filter(use_case_id__in=[u.pk for u in use_cases]).order_by("pk"))
    today = timezone.now().date()
    width = token_bin(20_000) + 1
    rows = []
    for uc in use_cases:
        for back in range(DAYS):
            bins = [0] * width
            for _ in range(40):  # 40 draws of 500 calls: a log-normal-ish spread around ~1,000 tokens
                bins[token_bin(int(rng.lognormvariate(6.9, 0.6)))] += EVENTS // (USE_CASES * DAYS * 40)
            rows.append(TokensDaily(day=today - timedelta(days=back), use_case_id=uc.pk, bins=bins))
    TokensDaily.objects.bulk_create(rows, batch_size=10_000)
    _end_users(rng, use_cases, keys, today, range(DAYS, USER_DAYS))
    Slo.objects.bulk_create([Slo(use_case=uc, team_id=uc.team_id, kind="availability", target_percent="99.5")
                             for uc in use_cases[::5]])
    slos_evaluate()


def _touch(use_case_ids) -> None:
    """A gateway call landed for these use cases (what the recorder's token upsert stamps)."""
    from django.utils import timezone

    from apps.gateway.models import TokensDaily

    TokensDaily.objects.filter(use_case_id__in=use_case_ids, day=timezone.now().date()).update(
        updated_at=timezone.now())


def run(requests: int = 40) -> dict:
    setup_django("portal_bench_scorecards")
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from apps.gateway.models import TokensDaily
    from apps.reviews.models import UseCase
    from apps.scorecards import services
    from apps.slos.models import Slo

    generated = False
    if not UseCase.objects.filter(title__startswith="Bench use case").exists():
        started = time.perf_counter()
        _generate()
        generated = round(time.perf_counter() - started, 1)
    if not TokensDaily.objects.exists():
        started = time.perf_counter()
        _generate_sc_more()
        generated = round(time.perf_counter() - started + (generated or 0), 1)

    a_day_ago = timezone.now() - timedelta(days=1)  # generated just now must not read as "edited since"
    UseCase.objects.filter(title__startswith="Bench use case").update(updated_at=a_day_ago)
    Slo.objects.update(updated_at=a_day_ago)
    refresh, incremental, again, idle, due = [], [], [], [], []
    ids = list(UseCase.objects.filter(title__startswith="Bench use case").order_by("pk").values_list("pk", flat=True))
    rng = random.Random(7)
    for _ in range(3):  # alternating, so both see the same machine load
        TokensDaily.objects.update(updated_at=a_day_ago)  # the previous round's "new data" is old news now
        started = time.perf_counter()
        count = services.scorecards_refresh()  # before: every use case, each pass
        refresh.append(time.perf_counter() - started)
        _touch(rng.sample(ids, len(ids) // 10))
        started = time.perf_counter()
        due.append(services.scorecards_refresh_due())  # after: only the use cases with new data
        incremental.append(time.perf_counter() - started)
        started = time.perf_counter()  # the next beat, 4 minutes on: the same ones once more (2-minute slack)...
        services.scorecards_refresh_due(now=timezone.now() + timedelta(minutes=4))
        again.append(time.perf_counter() - started)
        started = time.perf_counter()  # ... and the one after: nothing new, the cost of finding out
        assert services.scorecards_refresh_due(now=timezone.now() + timedelta(minutes=8)) == 0
        idle.append(time.perf_counter() - started)
    admin = get_user_model().objects.filter(username="bench-admin").first() or \
        get_user_model().objects.create_user("bench-admin", is_staff=True)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(admin)
    for _ in range(3):
        assert client.get("/scorecards/").status_code == 200
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get("/scorecards/")
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200
    page_bytes = len(response.content)
    more = []  # "Show the next 50": page 2's rows, the htmx fragment
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get("/scorecards/", {"page": 2, "rows": 1}, HTTP_HX_REQUEST="true")
        more.append(time.perf_counter() - started)
        assert response.status_code == 200
    return {"date": now_utc(), "machine": machine(), "load": os.getloadavg(), "generated_seconds": generated,
            "use_cases": count, "refresh": summary_ms(refresh), "incremental_use_cases": due,
            "incremental_refresh_10pct_new": summary_ms(incremental), "incremental_same_again": summary_ms(again),
            "incremental_nothing_new": summary_ms(idle),
            "portfolio_page": summary_ms(samples),
            "page_goal_ms": 200, "page_bytes": page_bytes, "next_page_rows": summary_ms(more),
            "next_page_bytes": len(response.content)}


if __name__ == "__main__":
    print(json.dumps(run()))
