"""What experiments registers into lower apps at start-up, in one place (docs/architecture.md, "The
registries"): the gateway's split source (apps/gateway/splits.py), the `experiment` promotion gate check
(apps/prompts/registry.py) and audit links to experiments. Called once, from `ExperimentsConfig.ready()`.
"""

from __future__ import annotations

from django.urls import reverse

from apps.audit.links import int_ids, register_object_link
from apps.experiments import gate, routing
from apps.experiments.models import Experiment
from apps.gateway.splits import register_split_source
from apps.prompts.registry import register_gate_check


def _experiment_urls(ids: list[str]) -> dict[str, str]:
    return {str(pk): reverse("experiments:detail", args=[pk])
            for pk in Experiment.objects.filter(pk__in=int_ids(ids)).values_list("pk", flat=True)}


def register() -> None:
    register_split_source("experiments", routing.split_for_prompt)
    register_gate_check("experiment", "Online experiment: the arm won", gate.experiment_check, order=50)
    register_object_link("experiments.experiment", _experiment_urls)
