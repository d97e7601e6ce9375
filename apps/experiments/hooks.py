"""What experiments registers into lower apps at start-up, in one place (docs/architecture.md, "The
registries"): the gateway's split source (apps/gateway/splits.py), the `experiment` promotion gate check and
the prompt page's panel (apps/prompts/registry.py), and audit links to experiments. Called once, from
`ExperimentsConfig.ready()`.
"""

from __future__ import annotations

from django.template.loader import render_to_string
from django.urls import reverse

from apps.audit.links import int_ids, register_object_link
from apps.experiments import gate, routing, selectors
from apps.experiments.models import Experiment
from apps.gateway.splits import register_split_source
from apps.prompts.registry import register_gate_check, register_prompt_panel


def _experiment_urls(ids: list[str]) -> dict[str, str]:
    return {str(pk): reverse("experiments:detail", args=[pk])
            for pk in Experiment.objects.filter(pk__in=int_ids(ids)).values_list("pk", flat=True)}


def prompt_panel(*, prompt, user, **_):
    """The panel on the prompt page: its latest experiments (the ones this person may see), and a way to start one."""
    experiments = list(selectors.experiment_list(actor=user).filter(prompt_id=prompt.pk)[:5])
    html = render_to_string("experiments/partials/_prompt_panel.html", {
        "experiments": experiments, "prompt": prompt, "may_create": selectors.may_change(user, prompt)})
    return {"title": "Online experiments", "html": html}


def register() -> None:
    register_split_source("experiments", routing.split_for_prompt)
    register_gate_check("experiment", "Online experiment: the arm won", gate.experiment_check, order=50)
    register_prompt_panel("experiment", prompt_panel)
    register_object_link("experiments.experiment", _experiment_urls)
