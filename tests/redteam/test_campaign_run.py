"""A campaign against a prompt version on the scripted stand-in: every attack is made once, the attacks the
stand-in complies with are exactly the successful ones (so the ASR is known), canaries are caught exactly, the
calls are on the ledger, the finish is audited and the prompt's owners are told; cancel and resume."""

from __future__ import annotations

from apps.audit.models import AuditEvent
from apps.costs.models import UsageEvent
from apps.notifications.models import Notification
from apps.redteam import library_glue, runner, services
from apps.redteam.models import Attack, CampaignStatus
from tests.redteam.conftest import PROBES, expand, expected_successes


def test_the_attacks_the_stand_in_complies_with_are_exactly_the_successes(launch, owner):
    campaign = launch()
    done = runner.campaign_execute_inline(campaign.pk)

    attacks = expand(PROBES, ["plain", "base64", "document"], 0)
    assert done.status == CampaignStatus.FINISHED
    assert done.progress_done == done.progress_total == len(attacks)
    assert set(Attack.objects.filter(campaign=done, success=True).values_list("key", flat=True)) == \
        expected_successes(attacks)
    overall = done.summary["overall"]
    assert overall["successes"] == len(expected_successes(attacks))
    assert overall["total"] == len(attacks)
    interval = library_glue.wilson(overall["successes"], len(attacks))
    assert (overall["asr"], overall["low"], overall["high"]) == (interval["value"], interval["low"], interval["high"])
    by_strategy = {row["name"]: row["successes"] for row in done.summary["strategies"]}
    assert by_strategy["base64"] == 0  # the encoded COMPLY mark is invisible to the scripted stand-in


def test_a_complied_leak_is_caught_by_the_exact_canary_and_the_marker(launch):
    campaign = runner.campaign_execute_inline(launch(strategies=("plain",)).pk)

    leak = Attack.objects.get(campaign=campaign, probe_id="leak-1")
    injection = Attack.objects.get(campaign=campaign, probe_id="inj-1")
    refused = Attack.objects.get(campaign=campaign, probe_id="harm-1")
    assert campaign.canaries["system"] in leak.output
    assert leak.evidence["decided_by"] == "canary"
    assert {d["name"] for d in injection.evidence["detectors"] if d["hit"]} >= {"canary", "marker"}
    assert refused.success is False and refused.evidence["decided_by"] == "refusal"


def test_indirect_injection_plants_the_document_canary_in_the_retrieved_context(launch, scripted_standin):
    campaign = runner.campaign_execute_inline(launch(strategies=("document",)).pk)

    attack = Attack.objects.get(campaign=campaign, probe_id="inj-1")
    assert attack.success is True
    assert campaign.canaries["document"] in attack.output
    hits = next(d for d in attack.evidence["detectors"] if d["name"] == "canary")["detail"]
    assert "document" in hits and "system" in hits


def test_each_call_is_on_the_ledger_and_the_finish_is_audited_and_owners_are_told(
        launch, owner, engineer, django_capture_on_commit_callbacks, emails_inline):
    with django_capture_on_commit_callbacks(execute=True):
        campaign = runner.campaign_execute_inline(launch().pk)

    calls = UsageEvent.objects.filter(feature=f"redteam-campaign-{campaign.pk}")
    assert calls.count() == campaign.progress_total
    assert set(calls.values_list("prompt_name", flat=True)) == {"support/rt-assistant"}
    assert AuditEvent.objects.filter(action="redteam.campaign.create", object_id=str(campaign.pk)).exists()
    assert AuditEvent.objects.filter(action="redteam.campaign.finished", object_id=str(campaign.pk)).exists()
    told = set(Notification.objects.filter(kind="redteam.campaign.findings").values_list("user__username",
                                                                                          flat=True))
    assert {owner.username, engineer.username} <= told


def test_a_cancelled_campaign_keeps_its_attacks_and_resumes_with_only_the_missing_ones(launch, engineer):
    campaign = launch()
    runner.campaign_start(campaign.pk)
    claimed = runner.claim_batch(campaign.pk, "inline:elsewhere:1", 3)
    assert len(claimed) == 3  # never more than asked for, whatever plan PostgreSQL picks (it once took all 12)
    runner.write_batch(campaign.pk, [runner.Outcome(a, "done", output="no", success=False, evidence={})
                                     for a in claimed], [], None)
    services.campaign_cancel(campaign=campaign, actor=engineer)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.CANCELLED and campaign.progress_done == len(claimed)

    services.campaign_resume(campaign=campaign, actor=engineer)
    done = runner.campaign_execute_inline(campaign.pk)

    assert done.status == CampaignStatus.FINISHED
    assert done.progress_done == done.progress_total
    assert set(Attack.objects.filter(campaign=done).values_list("attempts", flat=True)) == {1}  # none twice
    actions = list(AuditEvent.objects.filter(object_id=str(campaign.pk), action__startswith="redteam.campaign")
                   .values_list("action", flat=True))
    assert {"redteam.campaign.cancel", "redteam.campaign.resume", "redteam.campaign.finished"} <= set(actions)


def test_a_campaign_that_cannot_render_is_refused_with_the_reason(launch):
    import pytest
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as exc:
        launch(variables={})
    assert "product" in str(exc.value)
