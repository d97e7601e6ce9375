"""Demo usage for `make run`: 90 days that tell a story on first open.

    seed_demo_costs(people, teams)   # after seed_demo_accounts() and seed_demo_models() (prices)

About 150,000 events (deterministic: a fixed random seed) across four teams, ten features, six tenants and
nine models: weekly seasonality (quiet weekends), ~60% growth over the quarter, a prompt version that bloats
its prompts half-way, outcomes on the answer features, unpriced calls of a custom fine-tune, cached input on
the support bot, and one anomaly spike two days ago. Then budgets at different burn levels (calm, warning,
over with a hard cap, weekly, one tenant), their alerts, and the anomaly. Idempotent: a second run adds nothing.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.services import team_create
from apps.costs.alerts import anomalies_detect, budget_alert_notify, budgets_check, cost_anomaly_notify
from apps.costs.ingest import price_rows
from apps.costs.ledger import DEFAULTS, ledger_write
from apps.costs.models import Budget, BudgetAlert, BudgetPeriodKind, UsageEvent, UsageRollup
from apps.costs.rollups import day_start
from apps.costs.services import budget_create

DAYS = 90
PREFIX = "demo-"
EXTRA_TEAMS = {"sales-assist": ("Sales Assist", "Drafting and call notes for the sales team."),
               "internal-tools": ("Internal Tools", "Code review and policy Q&A for employees.")}
TENANTS = [("acme", 0.34), ("globex", 0.22), ("initech", 0.16), ("umbrella", 0.12), ("hooli", 0.10), ("stark", 0.06)]
# team, feature, model, provider, per day (day 0), input tokens (median), output tokens (median), cached share,
# source mix, prompt name, outcome share
FEATURES = [
    ("support-ai", "ticket-answer", "gpt-4o-mini", "openai", 520, 1800, 220, 0.55,
     {"api": .9, "playground": .05, "eval": .05}, "support-answer", 0.6),
    ("support-ai", "ticket-summarise", "gpt-4.1-mini", "openai", 260, 2600, 160, 0.0, {"api": 1.0}, "ticket-summary", 0),
    ("support-ai", "triage-classify", "gpt-4.1-nano", "openai", 380, 700, 12, 0.0, {"api": 1.0}, "triage", 0),
    ("search", "query-rewrite", "gpt-4o-mini", "openai", 300, 350, 40, 0.0, {"api": 1.0}, "query-rewrite", 0),
    ("search", "answer-synthesis", "gpt-4o", "openai", 90, 3200, 320, 0.3, {"rag": .85, "eval": .15},
     "grounded-answer", 0.5),
    ("search", "doc-embeddings", "text-embedding-3-small", "openai", 150, 4000, 0, 0.0, {"rag": 1.0}, "", 0),
    ("sales-assist", "email-draft", "claude-sonnet-4", "anthropic", 60, 1500, 450, 0.2, {"api": 1.0}, "email-draft", 0.3),
    ("sales-assist", "call-notes", "o4-mini", "openai", 25, 6000, 900, 0.0, {"api": 1.0}, "call-notes", 0),
    ("internal-tools", "code-review", "acme-ft-llama-70b", "vllm", 30, 5000, 600, 0.0, {"api": 1.0}, "", 0),
    ("internal-tools", "policy-qa", "gemini-2.5-flash", "google", 45, 2200, 250, 0.0, {"api": .8, "playground": .2},
     "policy-qa", 0.4),
]
SPIKE = ("sales-assist", "email-draft", 15.0)  # two days ago: a runaway batch job


def _pick(rng: random.Random, weights: dict | list):
    items = list(weights.items()) if isinstance(weights, dict) else list(weights)
    r = rng.random() * sum(w for _, w in items)
    for value, w in items:
        r -= w
        if r <= 0:
            return value
    return items[-1][0]


def _teams(teams: dict) -> dict:
    found = dict(teams)
    for slug, (name, description) in EXTRA_TEAMS.items():
        if slug not in found:
            found[slug] = Team.objects.filter(slug=slug).first() or team_create(name=name, slug=slug,
                                                                                description=description)
    return found


def generate_rows(team_ids: dict[str, int], *, now: datetime, seed: int = 42, scale: float = 1.0) -> list[dict]:
    rng = random.Random(seed)
    today = day_start(now)
    rows: list[dict] = []
    n = 0
    for offset in range(DAYS - 1, -1, -1):
        day = today - timedelta(days=offset)
        age = DAYS - 1 - offset
        growth = 1 + 0.6 * age / (DAYS - 1)
        weekday = 0.45 if day.weekday() >= 5 else 1.0
        hours = (now - day).total_seconds() / 3600 if offset == 0 else 24.0
        for team, feature, model, provider, per_day, tin, tout, cached, sources, prompt, judged in FEATURES:
            volume = per_day * 0.85 * scale * growth * weekday * rng.uniform(0.85, 1.15) * min(1.0, hours / 24)
            if offset == 2 and (team, feature) == SPIKE[:2]:
                volume *= SPIKE[2] / weekday  # a runaway batch job does not rest at weekends
            bloated = prompt == "support-answer" and age >= 55  # v4 pasted the whole FAQ into the prompt
            version = (4 if bloated else 3) if prompt == "support-answer" else (2 if prompt else None)
            for _ in range(int(volume) + (rng.random() < volume % 1)):
                n += 1
                at = day + timedelta(seconds=rng.uniform(0, min(hours, 24) * 3600 - 1))
                input_tokens = max(1, int(rng.lognormvariate(math.log(tin * (1.8 if bloated else 1)), 0.45)))
                output_tokens = 0 if not tout else max(1, int(rng.lognormvariate(math.log(tout), 0.5)))
                status = "error" if rng.random() < 0.012 else "ok"
                outcome = "unknown"
                if judged and status == "ok" and rng.random() < judged:
                    success_rate = 0.74 if bloated else 0.82
                    outcome = "success" if rng.random() < success_rate else "failure"
                rows.append({
                    **DEFAULTS, "occurred_at": at, "request_id": f"{PREFIX}{n}", "team_id": team_ids[team],
                    "feature": feature, "tenant": _pick(rng, TENANTS), "provider": provider, "model": model,
                    "operation": "embedding" if "embedding" in model else "chat",
                    "prompt_name": prompt, "prompt_version": version, "source": _pick(rng, sources),
                    "input_tokens": input_tokens, "output_tokens": output_tokens if status == "ok" else 0,
                    "cached_input_tokens": int(input_tokens * cached * rng.uniform(0.6, 1.0)) if cached else 0,
                    "reasoning_tokens": int(output_tokens * 0.6) if model.startswith("o") else 0,
                    "latency_ms": int(rng.lognormvariate(math.log(300 + output_tokens * 12), 0.3)),
                    "status": status, "error_type": "RateLimited" if status == "error" else "", "outcome": outcome,
                })
    return rows


def seed_demo_costs(people: dict, teams: dict, *, now: datetime | None = None, scale: float = 1.0) -> dict:
    """Write the demo ledger, budgets and alerts (once). Returns counts for the launcher's log."""
    now = now or timezone.now()
    if UsageEvent.objects.filter(request_id=f"{PREFIX}1").exists():
        return {"events": 0, "budgets": 0}
    teams = _teams(teams)
    team_ids = {slug: t.pk for slug, t in teams.items()}
    rows = generate_rows(team_ids, now=now, scale=scale)
    for start in range(0, len(rows), 5000):
        batch = rows[start:start + 5000]
        price_rows(batch)
        ledger_write(batch, now=now)
    budgets = _budgets(people, teams, now)
    spike_day = day_start(now) - timedelta(days=2) + timedelta(hours=23)
    anomalies = anomalies_detect(now=spike_day)
    budgets_check(now=now)
    # Deliver to the inbox now (the queued tasks find them delivered: notify() is deduplicated), so the demo
    # has messages on first open even before a worker runs.
    for alert_id in BudgetAlert.objects.values_list("pk", flat=True):
        budget_alert_notify(alert_id)
    for anomaly in anomalies:
        cost_anomaly_notify(anomaly.pk)
    return {"events": len(rows), "budgets": budgets}


def _spend_since(team, since: datetime, **scope) -> Decimal:
    rows = UsageRollup.objects.filter(granularity="day", bucket_start__gte=since, team=team, **scope)
    return rows.aggregate(total=Sum("cost"))["total"] or Decimal(0)


@transaction.atomic
def _budgets(people: dict, teams: dict, now: datetime) -> int:
    admin = people.get("admin")
    owners = {"support-ai": people.get("olivia") or admin, "search": people.get("erin") or admin}
    created = 0
    # (team, name, burn level this month, period, hard cap factor, scope)
    plans = [
        ("support-ai", "Support AI monthly", 0.45, BudgetPeriodKind.MONTH, None, {}),
        ("search", "Search monthly", 0.86, BudgetPeriodKind.MONTH, None, {}),
        ("sales-assist", "Sales Assist monthly (capped)", 1.08, BudgetPeriodKind.MONTH, Decimal("1.10"), {}),
        ("internal-tools", "Internal Tools weekly", 0.6, BudgetPeriodKind.WEEK, None, {}),
        ("support-ai", "Support AI · acme", 0.7, BudgetPeriodKind.ROLLING_30D, None, {"tenant": "acme"}),
    ]
    for slug, name, burn, period, cap_factor, scope in plans:
        team = teams[slug]
        if Budget.objects.filter(team=team, name=name).exists():
            continue
        if period == BudgetPeriodKind.MONTH:
            since = day_start(now).replace(day=1)
        else:
            days = 7 if period == BudgetPeriodKind.WEEK else 30
            since = day_start(now) - timedelta(days=(day_start(now).weekday() if days == 7 else 29))
        spent = _spend_since(team, since, **scope)
        step = Decimal("1") if spent > 20 else Decimal("0.01")
        amount = max(Decimal("0.01"), (spent / Decimal(str(burn))).quantize(step))
        hard_cap = (amount * cap_factor).quantize(step) if cap_factor else None
        budget_create(actor=owners.get(slug) or admin, name=name, team=team, amount=amount, period=period,
                      hard_cap=hard_cap, **scope)
        created += 1
    return created


