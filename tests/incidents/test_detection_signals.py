"""The provider-outage, runaway-cost and data-exposure signals: a budget's hard cap hit (429 insufficient_quota
refusals), PII found in outputs, a deployment's circuit breaker open. Each fires at its threshold and stays quiet
under it; end to end, a simulated outage at the stand-in opens a Sev1 incident and a cap hit at the gateway a
suggestion."""

from datetime import timedelta
from decimal import Decimal

import openai
import pytest
from django.utils import timezone
from openai import OpenAI

from apps.costs.models import CallStatus, Source
from apps.costs.services import UsageContext
from apps.incidents import detection
from apps.incidents.models import DetectionRule, Incident, IncidentSuggestion, Signal
from apps.llm import breakers, calls
from apps.llm.aliases import alias_create, deployment_create
from apps.llm.models import ModelKind
from tests.factories import TeamFactory, UsageEventFactory
from tests.gateway.test_budgets import MAX_TOKENS, QUESTION, priced_standin  # noqa: F401
from tests.support.standin import standin_model, standin_provider

NOW = timezone.now()
OUTPUT_PII = [{"direction": "output", "check": "pii", "action": "redact", "kinds": {"email": 1}}]
INPUT_PII = [{"direction": "input", "check": "pii", "action": "redact", "kinds": {"email": 1}}]


def _rule(signal, threshold, **extra):
    return DetectionRule.objects.create(name=f"{signal} rule", signal=signal, threshold=threshold, **extra)


def _about(findings):
    return sorted(f.about for f in findings)


def _refused(team, feature, n, minutes_ago=0, error_type="insufficient_quota"):
    UsageEventFactory.create_batch(n, source=Source.GATEWAY, team=team, feature=feature, status=CallStatus.REFUSED,
                                   error_type=error_type, occurred_at=NOW - timedelta(minutes=minutes_ago))


@pytest.mark.django_db
def test_budget_cap_fires_per_feature_at_its_threshold_of_refusals_in_the_window(team):
    rule = _rule(Signal.BUDGET_CAP, 3, window_minutes=15)
    _refused(team, "refund-bot", 3)
    _refused(team, "faq", 2)  # under the threshold
    _refused(team, "search", 5, minutes_ago=60)  # before the window
    _refused(team, "triage", 5, error_type="rate_limited")  # another refusal: a key limit, not a cap
    findings = detection.budget_cap(rule, NOW)
    assert _about(findings) == ["budget:refund-bot"]
    assert findings[0].values == {"kind": "runaway_cost", "features": ["refund-bot"]}


@pytest.mark.django_db
def test_output_pii_fires_per_key_on_output_scans_only(team):
    rule = _rule(Signal.OUTPUT_PII, 2, window_minutes=15)
    UsageEventFactory.create_batch(2, source=Source.GATEWAY, team=team, gateway_key_id=7, occurred_at=NOW,
                                   guardrail_actions=OUTPUT_PII)
    UsageEventFactory(source=Source.GATEWAY, team=team, gateway_key_id=8, occurred_at=NOW,
                      guardrail_actions=OUTPUT_PII)  # under the threshold
    UsageEventFactory.create_batch(3, source=Source.GATEWAY, team=team, gateway_key_id=9, occurred_at=NOW,
                                   guardrail_actions=INPUT_PII)  # PII in what was sent: not an exposure
    findings = detection.output_pii(rule, NOW)
    assert _about(findings) == ["key:7"] and findings[0].values["kind"] == "data_exposure"


@pytest.fixture
def quick_breakers(settings):
    settings.LLM_BREAKER_WINDOW_SECONDS = 30
    settings.LLM_BREAKER_MIN_REQUESTS = 3
    settings.LLM_BREAKER_FAILURE_RATIO = 0.5


@pytest.fixture
def support_alias(llm_standin, quick_breakers):
    """The alias "support": svc-a first (the stand-in fails it on demand), standin-chat as its fallback."""
    provider = standin_provider(llm_standin)
    alias = alias_create(name="support", kind=ModelKind.CHAT)
    made = [deployment_create(alias=alias, model=standin_model(provider, f"support-{remote}", remote),
                              priority=priority) for priority, remote in enumerate(("svc-a", "standin-chat"))]
    for deployment in made:
        breakers.reset(deployment.pk)
    yield alias
    for deployment in made:
        breakers.reset(deployment.pk)


@pytest.mark.django_db
def test_a_provider_outage_at_the_standin_opens_a_sev1_incident_for_the_teams_calling_it(support_alias, llm_standin,
                                                                                         team):
    _rule(Signal.BREAKER_OPEN, 1, window_minutes=10, severity=1, auto_open=True)
    bystander = TeamFactory()  # calls another alias: not told
    UsageEventFactory(team=bystander, alias="embed", occurred_at=timezone.now())
    context = UsageContext(source="api", team_id=team.pk, feature="refund-bot")
    calls.chat(model="support", messages=QUESTION, context=context)
    assert detection.rules_evaluate().opened == 0  # healthy: quiet

    llm_standin.standin.control({"fail_models": {"svc-a": 503}})
    for _ in range(3):  # each call: svc-a fails, the fallback answers; the third opens svc-a's breaker
        calls.chat(model="support", messages=QUESTION, context=context)
    result = detection.rules_evaluate()

    assert (result.opened, result.suggested) == (1, 0)
    incident = Incident.objects.get()
    assert (incident.team, incident.kind, incident.severity) == (team, "provider_outage", 1)
    assert incident.deployments == ["support/support-svc-a"]
    assert detection.rules_evaluate().folded == 1 and Incident.objects.count() == 1  # the next beat folds


def test_a_budget_cap_hit_at_the_gateway_suggests_a_runaway_cost_incident(gateway_url, priced_standin,  # noqa: F811
                                                                          gateway_key, team, owner, drain):
    _rule(Signal.BUDGET_CAP, 1, window_minutes=15, severity=2)
    _key, secret = gateway_key(dollars_per_day=Decimal("0.05"))
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    sdk.chat.completions.create(model="standin-chat", messages=QUESTION, max_tokens=MAX_TOKENS)
    drain()
    assert detection.rules_evaluate().suggested == 0  # served within the cap: quiet

    with pytest.raises(openai.RateLimitError):  # the key's dollars per day: 429 insufficient_quota
        sdk.chat.completions.create(model="standin-chat", messages=QUESTION, max_tokens=MAX_TOKENS)
    drain()
    assert detection.rules_evaluate().suggested == 1
    suggestion = IncidentSuggestion.objects.get()
    assert (suggestion.team, suggestion.values["kind"], suggestion.values["features"]) == \
        (team, "runaway_cost", ["support-bot"])
