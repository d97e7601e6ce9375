"""A prompt with v1 on production and v2 on staging, and a draft experiment splitting it 50/50 between them."""

from __future__ import annotations

import pytest

from apps.experiments import services
from apps.prompts.content import Draft
from apps.prompts.models import Label
from apps.prompts.services import label_set, prompt_create, version_create

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
