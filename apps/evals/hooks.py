"""Everything evals registers at start-up, in one place (AppConfig.ready() calls `register()`): the built-in
run target, and into the prompt catalog the eval-gate check, the playground's "save as a dataset item" button
and the gate panel on a prompt's page; into the gateway the "Add to eval dataset" button of a stored body."""

from __future__ import annotations

from django.template.loader import render_to_string
from django.urls import reverse

from apps.accounts.permissions import Action, teams_for
from apps.evals import gates, selectors, targets
from apps.gateway.registry import register_body_action
from apps.prompts.registry import register_gate_check, register_playground_action, register_prompt_panel
from apps.prompts.selectors import version_list


def prompt_panel(*, prompt, user, **_):
    """The panel on the prompt page: the gate's verdict on the latest and the production version."""
    gate = selectors.gate_for(prompt)
    rows = []
    if gate is not None:
        production = gates.production_version(prompt)
        latest = version_list(prompt=prompt).first()
        for version in {v.pk: v for v in (latest, production) if v is not None}.values():
            rows.append({"version": version, "verdict": gates.gate_evaluate(gate, version),
                         "production": production is not None and version.pk == production.pk})
    html = render_to_string("evals/partials/_prompt_panel.html", {"gate": gate, "rows": rows, "prompt": prompt})
    return {"title": "Eval gate", "html": html}


def playground_action_url(*, run, user):
    """The playground's button on each finished run: save it as a dataset item."""
    if getattr(run, "status", "") != "ok" or not teams_for(user, Action.CHANGE).exists():
        return None
    return reverse("evals:from_playground", args=[run.pk])


def body_action_url(*, body, user):
    """The request log's button on a stored body: add it to a dataset (for who may change the team's datasets)."""
    if not selectors.dataset_list(actor=user, action=Action.CHANGE).filter(team_id=body.team_id).exists():
        return None
    return reverse("evals:from_gateway", args=[body.request_id])


def register() -> None:
    targets.register_builtin_targets()
    register_gate_check("eval_gate", "Eval gate passes", gates.eval_gate_check, order=40)
    register_playground_action("evals_save_item", "Save as a dataset item", playground_action_url)
    register_body_action("evals_add_item", "Add to eval dataset", body_action_url)
    register_prompt_panel("eval_gate", prompt_panel)
