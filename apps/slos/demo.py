"""Demo SLOs for `make run`: two use cases of Support AI with 28 days of gateway SLI counts.

- "Ticket triage summaries": availability 99.5 % and latency 95 % under 6 s, both healthy;
- "Reply drafting for agents": availability 99.5 %, burning fast since an hour ago (10 % of calls fail): the fast
  and slow pairs page, and the fast one has opened a Sev2 incident. The outage is also written for the next hour
  (demo only: minutes in the future count once their time comes), so the alert stays open for an hour after the
  demo loads and then resolves, with its resolved notice.

    seed_demo_slos(people, teams)   # the dicts returned by portal.demo.seed_demo_accounts()

Idempotent: does nothing when the demo's SLOs exist. Returns how many SLOs it created.
"""

from __future__ import annotations

import random
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from apps.core.request_context import acting_as
from apps.gateway.sli import LATENCY_THRESHOLDS_MS, SliCounts, sli_add_counts
from apps.reviews.models import State, UseCase
from apps.slos import evaluation
from apps.slos.models import Slo
from apps.slos.services import slo_create

HEALTHY, BURNING = "Ticket triage summaries", "Reply drafting for agents"
SLOW_6S = LATENCY_THRESHOLDS_MS.index(6000)


def _use_case(teams: dict, people: dict, title: str) -> UseCase:
    """The reviews demo's use case, or (without it) a plain active one of Support AI."""
    return UseCase.objects.filter(title=title).first() or UseCase.objects.create(
        team=teams["support-ai"], title=title, purpose="Demo use case", state=State.ACTIVE,
        business_owner=people["olivia"])


def _traffic(use_case_id: int, *, now, rng: random.Random, outage_from=None, outage_until=None) -> dict:
    """One minute row per hour for 28 days (200 calls, ~0.1 % failing, ~2 % slower than 6 s) and, during an
    outage, a row per minute with 10 % failing (20× the budget of 99.5 %)."""
    rows = {}
    start = (now - timedelta(days=28)).replace(minute=30, second=0, microsecond=0)
    for hour in range(28 * 24):
        at = start + timedelta(hours=hour)
        if at >= now:
            break
        bad = 1 if rng.random() < 0.2 else 0
        counts = SliCounts(requests=200, bad=bad, answered=200 - bad)
        counts.slow[:SLOW_6S + 1] = [rng.randint(3, 6)] * (SLOW_6S + 1)
        rows[(use_case_id, at)] = counts
    if outage_from is not None:
        minute = outage_from.replace(second=0, microsecond=0)
        while minute < outage_until:
            rows[(use_case_id, minute)] = SliCounts(requests=50, bad=5, answered=45)
            minute += timedelta(minutes=1)
    return rows


@transaction.atomic
def seed_demo_slos(people: dict, teams: dict) -> int:
    if "support-ai" not in teams or Slo.objects.filter(use_case__title__in=[HEALTHY, BURNING]).exists():
        return 0
    olivia, evan = people["olivia"], people["evan"]
    healthy, burning = _use_case(teams, people, HEALTHY), _use_case(teams, people, BURNING)
    now = timezone.now().replace(second=0, microsecond=0)
    rng = random.Random(16)
    counts = _traffic(healthy.pk, now=now, rng=rng)
    counts.update(_traffic(burning.pk, now=now, rng=rng, outage_from=now - timedelta(hours=1),
                           outage_until=now + timedelta(hours=1)))
    sli_add_counts(counts)
    with acting_as(olivia):
        slo_create(actor=olivia, use_case=healthy, kind="availability", target_percent="99.5")
        slo_create(actor=olivia, use_case=healthy, kind="latency", target_percent="95", threshold_ms=6000)
    with acting_as(evan):
        slo_create(actor=evan, use_case=burning, kind="availability", target_percent="99.5", open_incident=True,
                   incident_severity=2)
    with acting_as(None):
        evaluation.slos_evaluate(now=now)
    return 3
