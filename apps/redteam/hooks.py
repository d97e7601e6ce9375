"""What the red team registers at start-up, in one place (docs/architecture.md, "The registries"): into the
prompt catalog the `redteam` promotion gate check and the "Red team" panel of a prompt's page; audit links to
campaigns; the tasks its services queue. `register()` is called once, from `RedteamConfig.ready()`.
"""

from __future__ import annotations

from django.template.loader import render_to_string
from django.urls import reverse

from apps.accounts.permissions import Action, can
from apps.audit.links import int_ids, register_object_link
from apps.core.tasks import tasks_register
from apps.prompts.registry import register_gate_check, register_prompt_panel
from apps.redteam import gates, selectors, tasks
from apps.redteam.models import Campaign


def prompt_panel(*, prompt, user, **_):
    """The prompt page's box: the latest campaigns on this prompt and the trend across versions."""
    campaigns = list(selectors.campaign_list(actor=user, prompt_id=prompt.pk)[:3])
    html = render_to_string("redteam/partials/_prompt_panel.html", {
        "campaigns": campaigns, "prompt": prompt, "may_launch": can(user, Action.CHANGE, prompt)})
    return {"title": "Red team", "html": html}


def _campaign_urls(ids: list[str]) -> dict[str, str]:
    return {str(pk): reverse("redteam:campaign_detail", args=[pk])
            for pk in Campaign.objects.filter(pk__in=int_ids(ids)).values_list("pk", flat=True)}


def register() -> None:
    register_gate_check("redteam", "Red-team campaign on this version (elevated/high-risk use cases)",
                        gates.redteam_gate_check, order=45)
    register_prompt_panel("redteam", prompt_panel)
    register_object_link("redteam.campaign", _campaign_urls)
    tasks_register(tasks.campaign_run_task)
