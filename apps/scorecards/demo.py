"""Demo scorecards for `make run`: 12 weeks of gateway traffic (written as the recorder's rollups would be, tokens
per call included), 26 weeks of end users (more every week: adoption grows), outcomes and a few safety events for "Knowledge-base answers with citations" (whose prompt has a gate and
finished eval runs), a Sev2 incident naming its prompt version, the handbook collection linked to the refund use
case, target users, then one refresh. Latency P95, availability and cost per success end up missed.

    seed_demo_scorecards(people, teams)   # after the reviews and incidents demos (days=: fewer days, for tests)

Idempotent: does nothing when the demo key exists. Returns how many scorecards the refresh computed.
"""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from apps.core.request_context import acting_as
from apps.costs.models import UsageEvent
from apps.costs.rollups import token_bin
from apps.evals.models import Feedback
from apps.gateway.models import EndUserDaily, GatewayKey, LatencyDaily, TokensDaily, TrafficDaily
from apps.gateway.services import gateway_key_create
from apps.incidents import services as incident_services
from apps.incidents.models import Status as IncidentStatus
from apps.prompts.selectors import production_version
from apps.rag.config import RetrievalConfig
from apps.rag.demo import DATASET as RAG_DATASET
from apps.rag.evaluation import eval_run_create
from apps.rag.models import Collection
from apps.reviews.linking import collection_link
from apps.reviews.models import UseCase
from apps.scorecards import services

KEY_NAME = "kb-answers-demo"
USE_CASE = "Knowledge-base answers with citations"
PROMPT = "search/answer-with-citations"
DAYS = 84


@transaction.atomic
def seed_demo_scorecards(people: dict, teams: dict, *, days: int = DAYS) -> int:
    use_case = UseCase.objects.filter(title=USE_CASE).first()
    if use_case is None or GatewayKey.objects.filter(name=KEY_NAME).exists():
        return 0
    erin = people["erin"]
    key = gateway_key_create(team=use_case.team, actor=erin, name=KEY_NAME, feature="kb-answers",
                             use_case_id=use_case.pk).key
    _traffic(key, use_case, days)
    with acting_as(erin):  # erin owns the search team: she may set its targets
        services.target_users_set(actor=erin, use_case=use_case, target_users=600,
                                  reason="Demo: the support agents who answer from the knowledge base.")
    _incident(people, use_case)
    _collection(people)
    return services.scorecards_refresh()


def _traffic(key, use_case, days: int) -> None:
    """Daily rollups as the recorder writes them; the cost per call creeps up (cost per success: missed)."""
    rng = random.Random(16)
    today = timezone.now().date()
    traffic, latency, users, feedback, events, tokens = [], [], [], [], [], []
    for back in range(2 * 91 if days >= DAYS else days):  # two quarters of end users: adoption growth has data
        pool = 250 + 2 * (2 * 91 - back)  # more people use it every week
        users += [EndUserDaily(day=today - timedelta(days=back), gateway_key_id=key.pk, use_case_id=use_case.pk,
                               user_hash=f"{u:032x}") for u in rng.sample(range(pool), rng.randint(60, 120))]
    for back in range(days):
        day = today - timedelta(days=back)
        requests = rng.randint(700, 900)
        traffic.append(TrafficDaily(day=day, team_id=key.team_id, gateway_key_id=key.pk, alias="chat",
                                    deployment="chat/local", model="local-extractive", requests=requests,
                                    errors=rng.randint(2, 6), refused=rng.randint(0, 3),
                                    input_tokens=requests * 900, output_tokens=requests * 180,
                                    cost=Decimal(requests) * Decimal("0.0020") * (1 + Decimal(days - back) / 60)))
        for ms, share in ((800, 0.45), (1600, 0.35), (3200, 0.12), (7000, 0.06), (12000, 0.02)):
            latency.append(LatencyDaily(day=day, team_id=key.team_id, gateway_key_id=key.pk, alias="chat",
                                        deployment="chat/local", measure="total", bin=token_bin(ms),
                                        requests=int(requests * share)))
        bins = {}
        for n, share in ((500, 0.2), (900, 0.35), (1100, 0.25), (2000, 0.15), (6000, 0.05)):
            bins[token_bin(n)] = int(requests * share)
        tokens.append(TokensDaily(day=day, use_case_id=use_case.pk,
                                  bins=[bins.get(b, 0) for b in range(max(bins) + 1)]))
        at = timezone.now() - timedelta(days=back, hours=1)
        for i in range(rng.randint(25, 40)):
            good = rng.random() < 0.86
            feedback.append(Feedback(team_id=key.team_id, use_case_id=use_case.pk, request_id=f"demo-kb-{back}-{i}",
                                     success=good, overridden=not good and rng.random() < 0.6,
                                     thumbs="up" if good else "down", created_at=at))
        if back % 9 == 0:
            events.append(UsageEvent(occurred_at=at, request_id=f"demo-kb-guard-{back}", team_id=key.team_id,
                                     feature="kb-answers", use_case_id=use_case.pk, model="local-extractive",
                                     source="gateway", gateway_key_id=key.pk, status="refused",
                                     error_type="guardrail_input_pii",
                                     guardrail_actions=[{"direction": "input", "check": "pii", "action": "block",
                                                         "kinds": ["email"]}]))
    TrafficDaily.objects.bulk_create(traffic)
    LatencyDaily.objects.bulk_create(latency)
    EndUserDaily.objects.bulk_create(users, ignore_conflicts=True)
    TokensDaily.objects.bulk_create(tokens)
    Feedback.objects.bulk_create(feedback)
    UsageEvent.objects.bulk_create(events, ignore_conflicts=True)


def _incident(people, use_case) -> None:
    """A Sev2 naming the production prompt version (a regression escape while it has no review), mitigated after
    45 minutes and resolved after 150 (MTTR: detection to resolution)."""
    version = production_version(name=PROMPT)
    erin = people["erin"]
    with acting_as(erin):
        incident = incident_services.incident_declare(
            actor=erin, team=use_case.team, title="Knowledge-base answers cite a retired article",
            kind="incorrect_outputs", severity=2, summary="Answers cited an article retired last week.", use_cases=[use_case.pk],
            prompt_versions=[f"{PROMPT}@v{version.number}"] if version else [])
        incident_services.incident_move(incident=incident, actor=erin, to=IncidentStatus.INVESTIGATING)
        incident_services.incident_move(incident=incident, actor=erin, to=IncidentStatus.MITIGATED)
        incident_services.incident_move(incident=incident, actor=erin, to=IncidentStatus.RESOLVED)
    detected = timezone.now() - timedelta(days=3)
    type(incident).objects.filter(pk=incident.pk).update(detected_at=detected,
                                                         mitigated_at=detected + timedelta(minutes=45),
                                                         resolved_at=detected + timedelta(minutes=150))


def _collection(people) -> None:
    """The handbook collection behind the refund use case (index freshness and retrieval recall), and a retrieval
    eval run of its demo questions, queued behind the handbook's indexing job on the same queue: the worker fills
    both in, and the next refresh shows them."""
    refunds = UseCase.objects.filter(title="Refund eligibility assistant").first()
    collection = Collection.objects.filter(name="Company handbook").first()
    if refunds is None or collection is None or refunds.collection_links.exists():
        return
    olivia = people["olivia"]
    with acting_as(olivia):
        collection_link(use_case=refunds, actor=olivia, collection=collection)
        dataset = collection.datasets.filter(name=RAG_DATASET).first()
        if dataset is not None:
            eval_run_create(dataset=dataset, config=RetrievalConfig.from_dict(collection.retrieval),
                            collection=collection, label="demo: scorecard recall", user=olivia)
