"""Who hears about a campaign, through the portal's one inbox and e-mail (apps.notifications): when a campaign
finishes with findings, the prompt's owners (the version's author, the prompt's creator, the owning team's
owners) and whoever launched it."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.urls import reverse

from apps.accounts.models import Role
from apps.notifications.services import notify


def prompt_owners(campaign) -> list:
    ids = set(get_user_model().objects.filter(memberships__team_id=campaign.team_id,
                                              memberships__role=Role.OWNER).values_list("pk", flat=True))
    version = campaign.prompt_version
    if version is not None:
        ids |= {pk for pk in (version.author_id, version.prompt.created_by_id) if pk}
    if campaign.created_by_id:
        ids.add(campaign.created_by_id)
    return list(get_user_model().objects.filter(pk__in=ids, is_active=True))


def campaign_findings(campaign) -> None:
    overall = (campaign.summary or {}).get("overall") or {}
    asr = overall.get("asr")
    notify(users=prompt_owners(campaign), kind="redteam.campaign.findings",
           title=f"Red team: {campaign.successes} successful attack(s) on {campaign.target_label}",
           body=f"Campaign “{campaign.name}” finished: {campaign.successes} of {campaign.progress_done} attacks "
                f"succeeded (ASR {asr:.1%}). Triage the findings: accepted risk, to fix, or false positive."
           if asr is not None else f"Campaign “{campaign.name}” finished with findings to triage.",
           link=reverse("redteam:campaign_detail", args=[campaign.pk]),
           dedupe_key=f"redteam-campaign-findings-{campaign.pk}")
