"""Fixtures for evals: the offline models, a prompt with a RAG-style template, datasets, evaluators, and an
OpenAI-compatible stand-in server for runs that exercise the network path."""

from __future__ import annotations

import pytest

from apps.evals.datasets import dataset_create, dataset_items_add
from apps.evals.services import evaluator_create
from apps.prompts.content import Draft
from apps.prompts.services import prompt_create
from tests.evals.standin import StandIn, register_standin

TEMPLATE = "Answer from the context.\nContext:\n{{ context }}\nQuestion: {{ question }}"

ITEMS = [
    {"id": "refund", "inputs": {"question": "How long do refunds take?"}, "expected": "Refunds take 5 days.",
     "contexts": ["Refunds take 5 days. They go back to the original card."], "tags": ["billing"]},
    {"id": "hours", "inputs": {"question": "When is support open?"}, "expected": "Support is open 9 to 5.",
     "contexts": ["Support is open 9 to 5 on weekdays.", "Closed on public holidays."], "tags": ["support"]},
    {"id": "password", "inputs": {"question": "How do I reset my password?"},
     "expected": "Use the reset link on the login page.",
     "contexts": ["Use the reset link on the login page. The link expires after one hour."], "tags": []},
]


@pytest.fixture(autouse=True)
def _clean_cache():
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def local_models(db):
    from apps.llm.services import catalog_seed_local

    catalog_seed_local()


@pytest.fixture
def prompt(team, engineer, local_models):
    return prompt_create(team=team, name="support/faq-answer", actor=engineer, commit_message="first",
                         draft=Draft(kind="text", template=TEMPLATE, config={"model": "local-extractive"}))


@pytest.fixture
def version(prompt):
    return prompt.versions.get(number=1)


@pytest.fixture
def dataset(team, engineer):
    ds = dataset_create(team=team, name="support/faq-golden", input_names=["question"], actor=engineer)
    dataset_items_add(dataset=ds, items=ITEMS, actor=engineer, message="first items")
    ds.refresh_from_db()
    return ds


@pytest.fixture
def make_evaluator(team, engineer):
    def make(name, kind, params=None, threshold=None, team_=None):
        return evaluator_create(team=team_ or team, name=name, kind=kind, params=params or {}, threshold=threshold,
                                actor=engineer)

    return make


@pytest.fixture
def contains_expected(make_evaluator):
    return make_evaluator("mentions-expected", "levenshtein", {}, 0.3)


@pytest.fixture
def standin():
    with StandIn(delay=0.0) as server:
        yield server


@pytest.fixture
def standin_model(standin, db):
    return register_standin(standin)
