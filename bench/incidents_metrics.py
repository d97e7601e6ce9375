"""The incident metrics page over 5,000 incidents: server time and query count, and the selector the scorecards read.

Generates once in `portal_bench_incidents` (bulk_create): 5,000 incidents over the last 12 months in 3 teams,
each with mitigated / resolved times, a third linked to one of 10 use cases, 1,000 reviews (100 regression
escapes) and 300 production promotions of the use cases' prompts. Times `GET /incidents/metrics/` through Django's
full request stack (Client, DEBUG off) for a council member (every team) and one team's engineer, and
`incident_metrics(use_case_ids=[one], since=12 months ago)`.

Usage: python -m bench.incidents_metrics [--requests 20]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import timedelta

from bench.common import client_get_times, client_queries, setup_django, summary_ms, use_bench_database

DATABASE = "portal_bench_incidents"
INCIDENTS = 5_000


def seed():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from apps.accounts.models import CouncilSeat, Membership, Role, Team
    from apps.incidents.models import Incident, PostIncidentReview
    from apps.prompts.models import LabelEvent, Prompt, PromptVersion
    from apps.reviews.models import State, UseCase, UseCasePrompt

    User = get_user_model()
    teams = [Team.objects.get_or_create(slug=f"bench-inc-{i}", defaults={"name": f"Bench incidents {i}"})[0]
             for i in range(3)]
    engineer, _ = User.objects.get_or_create(username="bench-inc-engineer")
    Membership.objects.get_or_create(team=teams[0], user=engineer, defaults={"role": Role.ENGINEER})
    council, _ = User.objects.get_or_create(username="bench-inc-council")
    council.groups.add(Group.objects.get_or_create(name=CouncilSeat.SECURITY.group_name)[0])
    if Incident.objects.filter(team__in=teams).count() >= INCIDENTS:
        return engineer, council, UseCase.objects.filter(team__in=teams).order_by("pk").first(), 0.0
    started = time.monotonic()
    rng = random.Random(15)
    now = timezone.now()
    use_cases = [UseCase.objects.create(team=teams[i % 3], title=f"Bench use case {i}", state=State.ACTIVE,
                                        purpose="bench") for i in range(10)]
    rows = []
    for i in range(INCIDENTS):
        detected = now - timedelta(days=rng.uniform(0, 365))
        mitigated = detected + timedelta(minutes=rng.lognormvariate(4, 0.8)) if rng.random() < 0.9 else None
        resolved = (mitigated or detected) + timedelta(minutes=rng.lognormvariate(4.5, 0.8)) \
            if rng.random() < 0.85 else None
        rows.append(Incident(title=f"Bench incident {i}", kind=rng.choice(["incorrect_outputs", "runaway_cost",
                                                                           "provider_outage"]),
                             severity=rng.choice([1, 2, 2, 3, 3, 3, 4]), team=teams[i % 3], detected_at=detected,
                             mitigated_at=mitigated, resolved_at=resolved,
                             status="resolved" if resolved else "investigating", near_miss=i % 50 == 0))
    incidents = Incident.objects.bulk_create(rows, batch_size=1000)
    through = Incident.use_cases.through
    through.objects.bulk_create([through(incident_id=inc.pk, usecase_id=use_cases[k % 10].pk)
                                 for k, inc in enumerate(incidents) if k % 3 == 0], batch_size=2000)
    PostIncidentReview.objects.bulk_create([
        PostIncidentReview(incident=inc, summary="bench", regression_escape=k % 10 == 0,
                           release_kind="prompt_version" if k % 10 == 0 else "",
                           release_ref="bench@v1" if k % 10 == 0 else "")
        for k, inc in enumerate(incidents[:1000])], batch_size=1000)
    for n, use_case in enumerate(use_cases):
        prompt = Prompt.objects.create(team=use_case.team, name=f"bench/incidents-{n}")
        UseCasePrompt.objects.create(use_case=use_case, prompt=prompt)
        version = PromptVersion.objects.create(prompt=prompt, number=1, template="x", content_hash=f"bench-{n}")
        LabelEvent.objects.bulk_create([LabelEvent(prompt=prompt, label="production", to_version=version,
                                                   actor_label="bench",
                                                   occurred_at=now - timedelta(days=rng.uniform(0, 365)))
                                        for _ in range(30)])
    return engineer, council, use_cases[0], time.monotonic() - started


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args(argv)
    use_bench_database(DATABASE)
    setup_django(DATABASE)
    from django.test import Client
    from django.utils import timezone

    from apps.incidents.metrics import incident_metrics

    engineer, council, use_case, generated_s = seed()
    out = {"incidents": INCIDENTS, "generated_s": round(generated_s, 1)}
    for name, user in (("council_all_teams", council), ("engineer_one_team", engineer)):
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        client.get("/incidents/metrics/")  # warm up: templates, session
        out[name] = {"page": client_get_times(client, "/incidents/metrics/", args.requests),
                     "queries": client_queries(client, "/incidents/metrics/")}
    since = timezone.now() - timedelta(days=365)
    samples = []
    for _ in range(args.requests):
        started = time.perf_counter()
        incident_metrics(use_case_ids=[use_case.pk], since=since)
        samples.append(time.perf_counter() - started)
    out["selector_one_use_case"] = summary_ms(samples)
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
