"""Fixtures for the prompt catalog: a second engineer (the approver), prompt builders, and a quiet webhook queue."""

import pytest

from apps.accounts.models import Role
from apps.prompts import hooks, registry
from apps.prompts.content import Draft
from apps.prompts.services import prompt_create, version_create
from tests.factories import MembershipFactory, UserFactory


@pytest.fixture
def engineer2(team):
    user = UserFactory(username="ellen-engineer")
    MembershipFactory(team=team, user=user, role=Role.ENGINEER)
    return user


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    """Webhook deliveries are queued on commit; tests that care capture them explicitly."""
    from apps.prompts import tasks

    sent = []
    monkeypatch.setattr(tasks.webhook_deliver_task, "delay", lambda *a, **k: sent.append(a))
    return sent


@pytest.fixture(autouse=True)
def _clean_cache():
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def restore_registry():
    """Each test sees the registry as prompts alone sets it up (apps above register their own checks, guards,
    panels and actions at start-up; their tests cover those). Tests may register freely; all is restored."""
    names = ("_checks", "_guards", "_panels", "_filters", "_playground_actions")
    saved = {name: dict(getattr(registry, name)) for name in names}
    for name in names:
        getattr(registry, name).clear()
    hooks.register_gate_checks()
    yield registry
    for name, value in saved.items():
        target = getattr(registry, name)
        target.clear()
        target.update(value)


def text_draft(template="Summarise for {{ customer }}:\n<ticket>{{ ticket }}</ticket>", **kwargs):
    return Draft(kind="text", template=template, **kwargs)


def chat_draft(messages=None, **kwargs):
    messages = messages or [
        {"role": "system", "content": "You triage support tickets for {{ product }}."},
        {"role": "user", "content": "{{ question }}"},
    ]
    return Draft(kind="chat", messages=messages, **kwargs)


@pytest.fixture
def make_prompt(team, engineer):
    def make(name="support/triage-summary", *, template=None, kind="text", actor=None, team_=None, draft=None,
             **kwargs):
        draft = draft or (chat_draft() if kind == "chat" else text_draft(template) if template else text_draft())
        return prompt_create(team=team_ or team, name=name, kind=kind, actor=actor or engineer, draft=draft,
                             commit_message="first", **kwargs)

    return make


@pytest.fixture
def add_version(engineer):
    def add(prompt, template, *, actor=None, message="change", **kwargs):
        return version_create(prompt=prompt, draft=Draft(kind=prompt.kind, template=template, **kwargs),
                              commit_message=message, actor=actor or engineer).version

    return add
