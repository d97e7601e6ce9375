"""Detection rules on the portal's signals: each fires over its threshold and stays quiet under it; a finding is
a suggestion the team is told about (one click opens the prefilled incident), the same finding again folds into
it or into its open incident, a dismissed one stays quiet; a Sev1 rule may open the incident by itself."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.costs.models import CostAnomaly, Source
from apps.evals.models import Dataset, EvalGate, EvalRun, RunStatus
from apps.gateway.models import SliMinute
from apps.gateway.services import gateway_key_create
from apps.gateway.sli import SliCounts, key_series, sli_add_counts
from apps.incidents import detection, services
from apps.incidents.models import DetectionRule, Incident, IncidentSuggestion, Signal, Status
from apps.notifications.models import Notification
from apps.prompts.models import Prompt, PromptVersion
from apps.reviews.models import UseCase
from tests.factories import UsageEventFactory

NOW = timezone.now()
BLOCK = [{"direction": "input", "check": "injection", "action": "block", "kinds": ["injection"]}]
REDACT = [{"direction": "input", "check": "pii", "action": "redact", "kinds": ["email"]}]


def _rule(signal, threshold, **extra):
    return DetectionRule.objects.create(name=f"{signal} rule", signal=signal, threshold=threshold, **extra)


def _use_case(team, owner, title="Refund helper"):
    return UseCase.objects.create(team=team, title=title, purpose="Answers refund questions", business_owner=owner)


def _traffic(use_case, deployment, requests, bad, minutes_ago=0):
    """One minute of a use case's SLI counts, and one failed ledger row naming the deployment."""
    SliMinute.objects.create(minute=(NOW - timedelta(minutes=minutes_ago)).replace(second=0, microsecond=0),
                             use_case_id=use_case.pk, requests=requests, bad=bad)
    if bad:
        UsageEventFactory(source=Source.GATEWAY, team=use_case.team, use_case_id=use_case.pk, status="error",
                          deployment=deployment, occurred_at=NOW - timedelta(minutes=minutes_ago))


def _about(findings):
    return sorted(f.about for f in findings)


def test_gateway_error_rate_fires_per_use_case_over_the_last_minutes(team, owner):
    rule = _rule(Signal.GATEWAY_ERRORS, 0.2, min_requests=20, window_minutes=5)
    failing, tiny, healthy, earlier = (_use_case(team, owner, t) for t in ("failing", "tiny", "healthy", "earlier"))
    _traffic(failing, "chat/gpt-eu", 60, 30)
    _traffic(failing, "chat/gpt-eu", 40, 10, minutes_ago=2)  # minutes in the window are summed (40 of 100)
    _traffic(tiny, "chat/gpt-eu", 10, 9)  # too few requests
    _traffic(healthy, "chat/gpt-eu", 100, 5)
    _traffic(earlier, "chat/gpt-eu", 100, 90, minutes_ago=30)  # before the window
    findings = detection.gateway_errors(rule, NOW)
    assert _about(findings) == [f"use_case:{failing.pk}"]
    assert findings[0].values == {"kind": "provider_outage", "deployments": ["chat/gpt-eu"]}


def test_gateway_error_rate_of_a_key_bound_to_no_use_case_fires_per_key(team, owner, other_team, outsider):
    rule = _rule(Signal.GATEWAY_ERRORS, 0.2, min_requests=20, window_minutes=5, team=team)
    failing = gateway_key_create(team=team, actor=owner, name="batch-job", feature="batch").key
    elsewhere = gateway_key_create(team=other_team, actor=outsider, name="other", feature="x").key
    minute = NOW.replace(second=0, microsecond=0)
    sli_add_counts({(key_series(failing.pk), minute): SliCounts(requests=50, bad=25, answered=25),
                    (key_series(elsewhere.pk), minute): SliCounts(requests=50, bad=50)})  # not the rule's team
    UsageEventFactory(source=Source.GATEWAY, team=team, gateway_key_id=failing.pk, status="error",
                      deployment="chat/gpt-eu", occurred_at=NOW)
    findings = detection.gateway_errors(rule, NOW)
    assert _about(findings) == [f"key:{failing.pk}"]
    assert findings[0].values == {"kind": "provider_outage", "deployments": ["chat/gpt-eu"], "features": ["batch"]}


def test_cost_anomaly_fires_over_its_ratio_within_the_window(team):
    rule = _rule(Signal.COST_ANOMALY, 3, window_minutes=120)
    CostAnomaly.objects.create(day=NOW.date(), team=team, feature="refund-bot", spend=Decimal("50"),
                               baseline=Decimal("10"))
    CostAnomaly.objects.create(day=NOW.date(), team=team, feature="faq", spend=Decimal("20"), baseline=Decimal("10"))
    CostAnomaly.objects.create(day=NOW.date(), team=team, feature="old", spend=Decimal("90"), baseline=Decimal("10"),
                               created_at=NOW - timedelta(hours=5))
    findings = detection.cost_anomaly(rule, NOW)
    assert _about(findings) == ["feature:refund-bot"] and findings[0].values["features"] == ["refund-bot"]


def test_guardrail_blocks_spike_per_key(team):
    rule = _rule(Signal.GUARDRAIL_SPIKE, 3, window_minutes=30)
    for i in range(3):
        UsageEventFactory(source=Source.GATEWAY, team=team, gateway_key_id=7, guardrail_actions=BLOCK,
                          occurred_at=NOW - timedelta(minutes=i))
    for i in range(2):
        UsageEventFactory(source=Source.GATEWAY, team=team, gateway_key_id=8, guardrail_actions=BLOCK,
                          occurred_at=NOW - timedelta(minutes=i))
    for _ in range(4):
        UsageEventFactory(source=Source.GATEWAY, team=team, gateway_key_id=8, guardrail_actions=REDACT,
                          occurred_at=NOW)
    UsageEventFactory(source=Source.GATEWAY, team=team, gateway_key_id=8, guardrail_actions=BLOCK,
                      occurred_at=NOW - timedelta(hours=2))  # outside the window
    assert _about(detection.guardrail_spike(rule, NOW)) == ["key:7"]


def test_eval_gate_failures_per_prompt(team):
    rule = _rule(Signal.EVAL_GATE_FAILURES, 1, window_minutes=60)
    dataset = Dataset.objects.create(team=team, name="refund golden set", latest_revision=1)
    runs = {}
    for name, rate in (("support/refunds", 0.6), ("support/faq", 0.95)):
        prompt = Prompt.objects.create(team=team, name=name)
        version = PromptVersion.objects.create(prompt=prompt, number=1, template="x", content_hash="h")
        gate = EvalGate.objects.create(prompt=prompt, team=team, min_pass_rate=0.9)
        runs[name] = EvalRun.objects.create(team=team, target_label=name, prompt=prompt, prompt_version=version,
                                            dataset=dataset, dataset_revision=1, model="m", config_hash="c",
                                            evaluator_signature="e", gate=gate, status=RunStatus.FINISHED,
                                            pass_rate=rate, finished_at=NOW - timedelta(minutes=5))
    findings = detection.eval_gate_failures(rule, NOW)
    assert _about(findings) == [f"prompt:{runs['support/refunds'].prompt_id}"]
    assert findings[0].values["prompt_versions"] == ["support/refunds@v1"]


def test_a_finding_is_suggested_once_then_folds_then_opens_in_one_click(team, engineer, owner, viewer):
    _rule(Signal.GATEWAY_ERRORS, 0.2, min_requests=20, severity=2, window_minutes=24 * 60)
    _traffic(_use_case(team, owner), "gpt-eu", 100, 50)
    first = detection.rules_evaluate(NOW)
    again = detection.rules_evaluate(NOW + timedelta(minutes=5))
    assert (first.suggested, again.suggested, again.folded) == (1, 0, 1)
    suggestion = IncidentSuggestion.objects.get()
    assert suggestion.seen == 2
    told = Notification.objects.filter(kind="incident.suggestion").values_list("user__username", flat=True)
    assert sorted(told) == sorted([engineer.username, owner.username])  # engineers and owners, not viewers
    with pytest.raises(PermissionDenied):
        detection.suggestion_open(suggestion=suggestion, actor=viewer)

    incident = detection.suggestion_open(suggestion=suggestion, actor=engineer)
    assert (incident.kind, incident.severity, incident.deployments) == ("provider_outage", 2, ["gpt-eu"])
    assert incident.commander == engineer and "Refund helper" in incident.title
    assert AuditEvent.objects.filter(action="incident.suggestion_open").count() == 1
    # The same finding while the incident is open: a line on its timeline, no new suggestion.
    later = detection.rules_evaluate(NOW + timedelta(hours=2))
    assert (later.suggested, later.folded) == (0, 1)
    assert incident.timeline.filter(kind="system", text__startswith="Detection rule").count() == 1
    # Once the incident is resolved, a new finding is a new suggestion.
    services.incident_move(incident=incident, actor=engineer, to=Status.RESOLVED)
    assert detection.rules_evaluate(NOW + timedelta(hours=3)).suggested == 1


def test_a_dismissed_finding_stays_quiet_for_a_day(team, engineer, owner):
    _rule(Signal.GATEWAY_ERRORS, 0.2, min_requests=20, window_minutes=24 * 60)
    _traffic(_use_case(team, owner), "gpt-eu", 100, 50)
    detection.rules_evaluate(NOW)
    detection.suggestion_dismiss(suggestion=IncidentSuggestion.objects.get(), actor=engineer)
    assert detection.rules_evaluate(NOW + timedelta(minutes=5)).quiet == 1
    assert IncidentSuggestion.objects.count() == 1
    assert AuditEvent.objects.filter(action="incident.suggestion_dismiss").count() == 1


def test_a_sev1_rule_with_auto_open_opens_the_incident_and_pages_the_team(team, owner, engineer):
    _rule(Signal.GATEWAY_ERRORS, 0.2, min_requests=20, severity=1, auto_open=True)
    _rule(Signal.GATEWAY_ERRORS, 0.9, min_requests=20, severity=1, auto_open=True)  # does not fire
    _traffic(_use_case(team, owner), "gpt-eu", 100, 50)
    result = detection.rules_evaluate(NOW)
    assert (result.opened, result.suggested) == (1, 0)
    incident = Incident.objects.get()
    assert incident.severity == 1 and incident.commander is None and incident.created_by is None
    assert Notification.objects.filter(kind="incident", user=owner, title__startswith="Sev1").exists()
    assert AuditEvent.objects.filter(action="incident.declare", actor_label="system").count() == 1
    assert detection.rules_evaluate(NOW + timedelta(minutes=5)).folded == 1 and Incident.objects.count() == 1


def test_the_suggestions_page_opens_the_incident(team, engineer, owner, outsider, client_for):
    _rule(Signal.GATEWAY_ERRORS, 0.2, min_requests=20)
    _traffic(_use_case(team, owner), "gpt-eu", 100, 50)
    detection.rules_evaluate(NOW)
    suggestion = IncidentSuggestion.objects.get()
    assert client_for(outsider).get(reverse("incidents:suggestions")).context["suggestions"].count() == 0
    assert client_for(outsider).post(reverse("incidents:suggestion_open", args=[suggestion.pk])).status_code == 404
    page = client_for(engineer).get(reverse("incidents:suggestions"))
    assert suggestion.title in page.content.decode()
    opened = client_for(engineer).post(reverse("incidents:suggestion_open", args=[suggestion.pk]))
    assert opened.status_code == 302 and opened["Location"] == Incident.objects.get().get_absolute_url()
