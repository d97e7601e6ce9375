"""A prompt with v1 on production and v2 on staging, and a draft experiment splitting it 50/50 between them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.costs.models import UsageEvent
from apps.experiments import services
from apps.prompts.content import Draft
from apps.prompts.models import Label
from apps.prompts.services import label_set, prompt_create, version_create
from tests.factories import UsageEventFactory

ARMS = [{"key": "control", "weight": 50, "label": "production"},
        {"key": "candidate", "weight": 50, "label": "staging"}]


def _draft(text: str) -> Draft:
    return Draft(kind="text", template=text, config={"temperature": 0})


@pytest.fixture
def prompt(team, engineer):
    prompt = prompt_create(team=team, name="support/triage-summary", kind="text", actor=engineer,
                           draft=_draft("Summarise {{ ticket }}."), commit_message="first")
    Label.objects.create(prompt=prompt, name="production", version=prompt.versions.get())  # released earlier
    v2 = version_create(prompt=prompt, draft=_draft("Summarise {{ ticket }} in three bullets."), actor=engineer).version
    label_set(prompt=prompt, label="staging", version=v2, actor=engineer)
    return prompt


@pytest.fixture
def experiment(prompt, engineer):
    """A draft: control on production (v1), candidate on staging (v2), 50/50 by end user, 20 outcomes needed."""
    return services.experiment_create(actor=engineer, prompt=prompt, name="Bullet summaries", arms=ARMS,
                                      min_outcomes=20)


def unit_calls(experiment, arm: str, units: dict[str, tuple[int, int]], cost: str = "0.001"):
    """Per unit (its key as the gateway hashes it): (calls, successes), each call with a reported outcome."""
    UsageEvent.objects.bulk_create([
        UsageEventFactory.build(request_id=f"{arm}-{unit}-{i}", source="gateway", cost=Decimal(cost),
                                experiment_id=experiment.pk, experiment_arm=arm, experiment_unit=unit,
                                outcome="success" if i < successes else "failure")
        for unit, (calls, successes) in units.items() for i in range(calls)])
