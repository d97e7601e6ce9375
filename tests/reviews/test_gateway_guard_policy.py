"""Reviews' guardrail policy for the gateway (apps/reviews/hooks.py `use_case_guard_policy`): what a use case's
required controls, not waived, ask of its keys' traffic."""

from __future__ import annotations

import pytest

from apps.gateway.registry import AdmissionTarget
from apps.reviews.hooks import use_case_guard_policy
from apps.reviews.models import ControlWaiver, State, UseCase

pytestmark = pytest.mark.django_db


def target(use_case_id):
    return AdmissionTarget(key_id=1, team_id=1, feature="bot", use_case_id=use_case_id)


def test_required_controls_become_the_gateway_policy_and_a_waived_one_does_not(team):
    use_case = UseCase.objects.create(team=team, title="Refund helper", state=State.ACTIVE,
                                      required_controls=["pii_redaction", "prompt_injection_red_team", "dpia"])
    assert use_case_guard_policy(target(use_case.pk)) == {
        "guard_input_pii": "redact", "guard_output": "redact", "guard_injection": "flag"}

    ControlWaiver.objects.create(use_case=use_case, control="pii_redaction", reason="No personal data reaches it.")
    assert use_case_guard_policy(target(use_case.pk)) == {"guard_injection": "flag"}


def test_no_use_case_or_no_such_control_asks_nothing(team):
    plain = UseCase.objects.create(team=team, title="Summaries", state=State.ACTIVE, required_controls=["dpia"])
    assert use_case_guard_policy(target(None)) is None
    assert use_case_guard_policy(target(plain.pk)) is None
    assert use_case_guard_policy(target(plain.pk + 1000)) is None
