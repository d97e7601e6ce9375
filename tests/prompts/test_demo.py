"""The demo catalog: alive (labels, history, a pending request, a rollback) and idempotent."""

from apps.audit.models import AuditEvent
from apps.prompts.demo import seed_demo_prompts
from apps.prompts.models import LabelEvent, PromotionKind, PromotionRequest, PromotionStatus, Prompt
from apps.prompts.rendering import render_version
from portal.demo import seed_demo_accounts


def test_the_demo_catalog_is_alive_and_idempotent(db):
    accounts = seed_demo_accounts()
    assert seed_demo_prompts(accounts["people"], accounts["teams"]) == 12
    assert Prompt.objects.count() == 12
    assert set(Prompt.objects.values_list("team__slug", flat=True)) == {"support-ai", "search"}
    assert Prompt.objects.filter(latest_version_number__gte=2).count() >= 6
    pending = PromotionRequest.objects.get(status=PromotionStatus.OPEN)
    assert pending.prompt.name == "support/triage-summary" and pending.to_version.number == 3
    assert PromotionRequest.objects.filter(kind=PromotionKind.ROLLBACK, status=PromotionStatus.APPLIED).exists()
    assert LabelEvent.objects.filter(label="production").count() >= 8
    triage = Prompt.objects.get(name="support/triage-summary")
    production = triage.labels.get(name="production").version
    rendered = render_version(production, {"customer": "ACME", "ticket": "Printer on fire", "tone": "calm"})
    assert "calm, plain-spoken tone" in rendered.text

    events = AuditEvent.objects.count()
    assert seed_demo_prompts(accounts["people"], accounts["teams"]) == 0
    assert AuditEvent.objects.count() == events


def test_the_demo_still_releases_when_another_apps_gate_holds(db, restore_registry):
    from apps.prompts.registry import CheckOutcome, register_gate_check

    register_gate_check("eval_gate", "Eval gate passes", lambda ctx: CheckOutcome.failed("no eval runs yet"))
    accounts = seed_demo_accounts()
    assert seed_demo_prompts(accounts["people"], accounts["teams"]) == 12
    triage = Prompt.objects.get(name="support/triage-summary")
    assert triage.labels.get(name="production").version.number == 2
    assert PromotionRequest.objects.filter(expedited=True, expedite_reason__contains="Eval gate").exists()
