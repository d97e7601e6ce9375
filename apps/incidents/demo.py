"""Demo incident for `make run`: one resolved Sev2 of Support AI with a timeline (declared, acknowledged, notes,
a feature switched off and back on, mitigated, resolved), spread over the last afternoon; then the runbooks of
the five incident types, that incident's signed-off review and one detection rule per signal.

    seed_demo_incidents(people, teams)   # the dicts returned by portal.demo.seed_demo_accounts()
    seed_demo_followup(people, teams)

Idempotent: does nothing when the demo incident exists. Returns how many incidents it created.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from apps.core.request_context import acting_as
from apps.gateway.models import GatewayKey
from apps.gateway.services import gateway_key_create
from apps.incidents import mitigations, postmortems, regulatory, runbooks, services
from apps.incidents.models import DetectionRule, Incident, Runbook, Status
from apps.reviews import selectors as review_selectors

TITLE = "Refund assistant quoted a 60-day refund window"
REFUND_USE_CASE = "Refund eligibility assistant"  # apps/reviews/demo.py: high risk, people in the EU


@transaction.atomic
def seed_demo_incidents(people: dict, teams: dict) -> int:
    if Incident.objects.filter(title=TITLE).exists():
        return 0
    evan, olivia = people["evan"], people["olivia"]
    team = teams["support-ai"]
    key = GatewayKey.objects.filter(team=team, name="refund-assistant-demo").first() or \
        gateway_key_create(team=team, actor=olivia, name="refund-assistant-demo", feature="refund-assistant").key
    with acting_as(evan):
        incident = services.incident_declare(
            actor=evan, team=team, title=TITLE, kind="incorrect_outputs", severity=2,
            summary="The refund assistant answered that refunds are possible for 60 days; the policy says 14.",
            features=["refund-assistant"], deployments=["chat"], customer_impact="About 40 customers were told "
            "the wrong refund window; support followed up with each.", harm_categories=["misinformation"],
            affected_groups=["customers in the EU"], responders=[olivia])
        services.incident_acknowledge(incident=incident, actor=evan)
        services.incident_move(incident=incident, actor=evan, to=Status.INVESTIGATING)
        services.note_add(incident=incident, actor=evan, text="The new policy PDF was not re-indexed; the answers "
                                                              "cite last year's policy.")
        switch = mitigations.mitigation_apply(incident=incident, actor=evan, kind="feature_off",
                                              target={"scope": "key", "key_id": key.pk},
                                              params={"message": "Refund answers are paused; an agent will reply."},
                                              reason="Stop wrong answers while the policy is re-indexed.")
        services.incident_move(incident=incident, actor=evan, to=Status.MITIGATED)
        mitigations.mitigation_undo(mitigation=switch, actor=evan)
        services.note_add(incident=incident, actor=evan, text="Re-indexed; 20 sampled answers quote 14 days.")
        services.incident_move(incident=incident, actor=evan, to=Status.RESOLVED, note="Policy re-indexed.")
    _spread_over_the_afternoon(incident)
    return 1


def _spread_over_the_afternoon(incident: Incident) -> None:
    """Demo only: the steps above ran in a second; place them where a real afternoon would (about 80 minutes)."""
    start = timezone.now() - timedelta(days=1, hours=2)
    events = list(incident.timeline.order_by("at", "id"))
    minutes = [0, 4, 9, 25, 31, 33, 34, 70, 80, 81, 82]
    for event, offset in zip(events, minutes + [minutes[-1]] * len(events), strict=False):
        event.at = start + timedelta(minutes=offset)
        event.save(update_fields=["at"])
    Incident.objects.filter(pk=incident.pk).update(
        detected_at=start, started_at=start - timedelta(minutes=40), acknowledged_at=start + timedelta(minutes=4),
        mitigated_at=start + timedelta(minutes=33), resolved_at=events[-1].at)
    incident.mitigations.update(applied_at=start + timedelta(minutes=31), undone_at=start + timedelta(minutes=70),
                                expires_at=start + timedelta(minutes=271))


# -- after the incident: runbooks, the review of the demo incident, detection rules (ADR 0084-0087) --------------
RUNBOOKS = {
    "incorrect_outputs": ("Incorrect outputs", """## First 15 minutes
1. **Confirm**: reproduce with two or three real questions; note the prompt version and model in the incident.
2. **Contain**: if answers can harm people or money, apply *Feature off* (or a prompt rollback) now.
3. **Check the usual causes**: a new prompt version in production, a stale or missing document in the
   collection, a model version change behind an alias.

## Restore
- Roll back the prompt, re-index the collection, or pin the previous deployment.
- Sample 20 answers before undoing the switch.

## After
- Add the failing questions to the eval dataset of the prompt's release gate."""),
    "unsafe_content": ("Unsafe content", """## First 15 minutes
1. Collect examples (request log, sampled bodies) and the guardrail actions on them.
2. **Contain**: raise the filters (injection → block, output scan on) or switch the feature off.
3. Tell the council's security seat.

## Restore
- Fix the prompt or the policy; run the adversarial eval set; undo the switch.

## After
- Add the prompts that got through to the red-team set."""),
    "data_exposure": ("Data exposure", """## First 15 minutes
1. **Contain first**: switch the feature off; stop the collection if retrieval leaked documents.
2. Tell the privacy seat **at once**: personal data breaches have their own 72-hour clock (GDPR Art. 33).
3. Keep the evidence: do not delete logs or bodies.

## Restore
- Remove the data from the collection, turn PII redaction to block, re-run the PII checks.

## After
- Check the Art. 73 assessment on the incident if a high-risk use case is affected."""),
    "runaway_cost": ("Runaway cost", """## First 15 minutes
1. Find the key or feature on the cost dashboard (spend by key).
2. **Contain**: apply a *Rate limit* on the key (or *Feature off* if it is a loop).
3. Check for retry storms, long contexts, a changed model price.

## Restore
- Fix the caller; undo the limit; set a budget cap with alerts if there was none."""),
    "provider_outage": ("Provider outage", """## First 15 minutes
1. Check the provider's status page and the gateway's breaker state per deployment.
2. **Contain**: *Model fallback* — pin the alias to a healthy deployment.
3. Tell the product owners: answers may be slower or different while on the fallback.

## Restore
- Undo the fallback once errors are back under 1% for 15 minutes."""),
}
REVIEW = {"summary": "The refund policy changed from 60 to 14 days; the new PDF was uploaded but not re-indexed, "
                     "so answers cited last year's policy for a day.",
          "impact": "About 40 customers were told a 60-day refund window; support followed up with each.",
          "contributing_factors": ["No re-index step in the policy release checklist",
                                   "No alert on the age of a collection's documents"],
          "went_well": "Switching the key off took a minute; the timeline made the review quick.",
          "went_badly": "Support noticed before any alert did.", "runbook_followed": "partly",
          "runbook_changes": "Check the collection's document dates first."}
DETECTION_RULES = [
    ("Gateway errors over 20% of a use case's calls in 5 minutes", "gateway_errors", 0.2, 5, 2),
    ("A deployment's circuit breaker opens", "breaker_open", 1, 10, 2),
    ("5 calls refused at a budget's hard cap in 15 minutes", "budget_cap", 5, 15, 3),
    ("Spend at 3× its norm", "cost_anomaly", 3.0, 120, 3),
    ("10 guardrail blocks in 15 minutes on one key", "guardrail_spike", 10, 15, 2),
    ("PII found in an output", "output_pii", 1, 15, 2),
    ("A prompt's release gate fails", "eval_gate_failures", 1, 60, 3),
    ("Task success 10 points under its 7-day norm", "task_success_drop", 0.1, 60, 3),
    ("Live groundedness 10 points under its 7-day norm", "groundedness_drop", 0.1, 60, 3),
    ("A use case misses a KPI target on its scorecard", "kpi_missed", 1, 60, 3),
]


@transaction.atomic
def seed_demo_followup(people: dict, teams: dict) -> int:
    """The five runbooks, the demo incident's review (signed off, one action item) and a detection rule per
    signal. Idempotent: does nothing when the runbooks exist. Returns how many runbooks it wrote."""
    if Runbook.objects.exists():
        return 0
    sam, evan, olivia = people["sam"], people["evan"], people["olivia"]
    with acting_as(sam):
        for kind, (title, body) in RUNBOOKS.items():
            runbooks.runbook_save(actor=sam, kind=kind, title=title, body=body)
    for name, signal, threshold, window, severity in DETECTION_RULES:
        DetectionRule.objects.get_or_create(name=name, defaults={"signal": signal, "threshold": threshold,
                                                                 "window_minutes": window, "severity": severity})
    incident = Incident.objects.filter(title=TITLE).first()
    if incident is not None and postmortems.review_of(incident) is None:
        with acting_as(evan):
            _assess_for_art73(incident, evan)
            postmortems.review_save(incident=incident, actor=evan, **REVIEW)
            postmortems.root_cause_add(incident=incident, actor=evan, category="data",
                                       description="The collection still held last year's policy PDF.")
            postmortems.root_cause_add(incident=incident, actor=evan, category="process",
                                       description="Policy owners did not know documents must be re-indexed.")
            postmortems.action_item_add(incident=incident, actor=evan, owner=olivia,
                                        title="Add re-indexing to the policy release checklist",
                                        due_date=timezone.localdate() + timedelta(days=14))
            postmortems.review_sign_off(incident=incident, actor=evan)
    return len(RUNBOOKS)


def _assess_for_art73(incident: Incident, actor) -> None:
    """Link the reviews demo's high-risk "Refund eligibility assistant" (EU users) when it exists, and record the
    Art. 73 assessment: EU users affected, not a serious incident (no Art. 3(49) harm)."""
    use_case = review_selectors.use_case_list(actor=actor).filter(title=REFUND_USE_CASE).first()
    if use_case is None:
        return
    services.incident_update(incident=incident, actor=actor, use_cases=[use_case.pk])
    regulatory.assessment_save(incident=incident, actor=actor, eu_users=True, category="",
                               causal_link="The assistant answered from an outdated policy document.",
                               corrective_actions="Policy re-indexed; re-indexing added to the release checklist.")
