"""Demo incident for `make run`: one resolved Sev2 of Support AI with a timeline (declared, acknowledged, notes,
a feature switched off and back on, mitigated, resolved), spread over the last afternoon.

    seed_demo_incidents(people, teams)   # the dicts returned by portal.demo.seed_demo_accounts()

Idempotent: does nothing when the demo incident exists. Returns how many incidents it created.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from apps.core.request_context import acting_as
from apps.gateway.models import GatewayKey
from apps.gateway.services import gateway_key_create
from apps.incidents import mitigations, services
from apps.incidents.models import Incident, Status

TITLE = "Refund assistant quoted a 60-day refund window"


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
