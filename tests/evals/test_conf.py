"""The evals settings read the environment through apps/core/env.py: same names, same defaults, typed errors."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.evals import conf


def test_defaults_when_the_environment_is_silent(monkeypatch):
    for name in ("EVALS_MAX_ATTEMPTS", "EVALS_PROVIDER_CONCURRENCY", "EVALS_CUSTOM_EVALUATORS", "EVALS_EMBEDDING_MODEL"):
        monkeypatch.delenv(name, raising=False)
    assert conf.get("EVALS_MAX_ATTEMPTS") == 4
    assert conf.get("EVALS_PROVIDER_CONCURRENCY") == {}
    assert conf.get("EVALS_CUSTOM_EVALUATORS") == []
    assert conf.get("EVALS_EMBEDDING_MODEL") == "local-minilm"


def test_the_environment_is_read_typed(monkeypatch):
    monkeypatch.setenv("EVALS_RETRY_CAP_SECONDS", "7.5")
    monkeypatch.setenv("EVALS_PROVIDER_CONCURRENCY", '{"openai": 50}')
    monkeypatch.setenv("EVALS_CUSTOM_EVALUATORS", "acme.checks, acme.more")
    assert conf.get("EVALS_RETRY_CAP_SECONDS") == 7.5
    assert conf.get("EVALS_PROVIDER_CONCURRENCY") == {"openai": 50}
    assert conf.get("EVALS_CUSTOM_EVALUATORS") == ["acme.checks", "acme.more"]


def test_a_malformed_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("EVALS_MAX_ATTEMPTS", "four")
    with pytest.raises(ImproperlyConfigured, match="EVALS_MAX_ATTEMPTS"):
        conf.get("EVALS_MAX_ATTEMPTS")


def test_a_django_setting_wins_over_the_environment(monkeypatch, settings):
    monkeypatch.setenv("EVALS_TASKS_PER_RUN", "9")
    settings.EVALS_TASKS_PER_RUN = 3
    assert conf.get("EVALS_TASKS_PER_RUN") == 3
