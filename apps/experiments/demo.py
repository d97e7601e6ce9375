"""Demo experiment for `make run`: "Bullet summaries with the product area" on support/triage-summary (the demo
use case "Ticket triage summaries"), running for three days, production (v2) against staging (v3), 50/50 by
end user, with gateway traffic on the ledger attributed to each arm (and to ~200 end users, some of them heavy:
the page's intervals are per user) and evals feedback on most calls. The
candidate wins on task success; promoting it meets the demo's open promotion request of v3 (the page says so).

    seed_demo_experiments(people, teams)   # the dicts returned by portal.demo.seed_demo_accounts()

Idempotent: does nothing when the demo experiment exists. Returns how many experiments it created.
"""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from apps.core.request_context import acting_as
from apps.costs.ledger import DEFAULTS, ledger_write
from apps.evals.models import Feedback
from apps.experiments import services
from apps.experiments.models import Experiment
from apps.gateway.splits import unit_key
from apps.prompts.models import Label, Prompt

NAME = "Bullet summaries with the product area"
PROMPT = "support/triage-summary"
CALLS = 1000
USERS = 200  # end users; call volume per user falls off exponentially (a few heavy users)
# arm: (success rate, override rate, cost per call, latency median ms, share of calls with a guardrail action)
PROFILE = {"control": (0.68, 0.14, "0.00040", 900, 0.010), "candidate": (0.86, 0.08, "0.00052", 1100, 0.015)}


@transaction.atomic
def seed_demo_experiments(people: dict, teams: dict) -> int:
    prompt = Prompt.objects.filter(name=PROMPT).first()
    if Experiment.objects.filter(name=NAME).exists() or prompt is None or "support-ai" not in teams:
        return 0
    if Label.objects.filter(prompt=prompt, name__in=["production", "staging"]).count() != 2:
        return 0
    evan = people["evan"]
    with acting_as(evan):
        experiment = services.experiment_create(
            actor=evan, prompt=prompt, name=NAME, hypothesis="Agents pick up tickets faster when the summary names "
            "the product area; fewer summaries are rewritten.",
            arms=[{"key": "control", "weight": 50, "label": "production"},
                  {"key": "candidate", "weight": 50, "label": "staging"}])
        experiment = services.experiment_start(experiment=experiment, actor=evan)
    started = timezone.now() - timedelta(days=3)
    Experiment.objects.filter(pk=experiment.pk).update(started_at=started, created_at=started - timedelta(hours=1))
    traffic_seed(experiment, prompt, teams["support-ai"], started)
    return 1


def traffic_seed(experiment: Experiment, prompt: Prompt, team, started) -> None:
    """CALLS gateway calls since `started`, half per arm, on the ledger (through its one write path), and evals
    feedback on about 70 % of them: the profiles above (also used by the browser test)."""
    rng = random.Random(16)
    versions = {label.name: label.version.number for label in Label.objects.filter(prompt=prompt)}
    span = (timezone.now() - started).total_seconds()
    rows, feedback = [], []
    leaning = [rng.uniform(-0.08, 0.08) for _ in range(USERS)]  # each user's own success rate: correlated calls
    for n in range(CALLS):
        user = min(USERS - 1, int(rng.expovariate(4 / USERS)))
        arm = "control" if user % 2 == 0 else "candidate"  # as many users per arm as the weights say (no SRM)
        success, override, cost, latency, unsafe = PROFILE[arm]
        success += leaning[user]
        request_id = f"demo-exp-{experiment.pk}-{n}"
        rows.append({**DEFAULTS, "occurred_at": started + timedelta(seconds=rng.uniform(0, span - 60)),
                     "request_id": request_id, "team_id": team.pk, "feature": "ticket-triage",
                     "use_case_id": experiment.use_case_id, "tenant": rng.choice(["acme", "globex", "initech"]),
                     "provider": "local", "model": "local-extractive", "alias": "chat", "source": "gateway",
                     "prompt_name": prompt.name,
                     "prompt_version": versions["production" if arm == "control" else "staging"],
                     "input_tokens": rng.randint(300, 700), "output_tokens": rng.randint(80, 220),
                     "cost": Decimal(cost) * Decimal(str(round(rng.uniform(0.8, 1.2), 3))),
                     "latency_ms": int(rng.lognormvariate(0, 0.35) * latency),
                     "guardrail_actions": [{"direction": "output", "check": "pii", "action": "redact",
                                            "kinds": ["email"]}] if rng.random() < unsafe else None,
                     "experiment_id": experiment.pk, "experiment_arm": arm,
                     "experiment_unit": unit_key(experiment.pk, f"demo-user-{user}")})
        if rng.random() < 0.7:
            feedback.append(Feedback(team=team, request_id=request_id, prompt_name=prompt.name,
                                     prompt_version=rows[-1]["prompt_version"], use_case_id=experiment.use_case_id,
                                     success=rng.random() < success, overridden=rng.random() < override,
                                     created_by_label="demo"))
    ledger_write(rows)
    Feedback.objects.bulk_create(feedback)
