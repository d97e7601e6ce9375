"""The one place "waiting on you" is computed: each registered source, a failing one left out."""

import pytest

from apps.notifications import waiting
from apps.notifications.waiting import Waiting, register_waiting, waiting_count, waiting_for


@pytest.fixture
def sources():
    saved = dict(waiting._sources)
    waiting._sources.clear()
    yield
    waiting._sources.clear()
    waiting._sources.update(saved)


def test_sources_are_summed_and_empty_or_failing_ones_are_left_out(sources, engineer):
    register_waiting("a", lambda user: Waiting("a", "A things", 2, "/a/"))
    register_waiting("b", lambda user: None)
    register_waiting("c", lambda user: 1 / 0)
    items = waiting_for(engineer)
    assert [w.key for w in items] == ["a"] and waiting_count(items) == 2


def test_nobody_logged_in_waits_on_nothing(sources):
    from django.contrib.auth.models import AnonymousUser

    register_waiting("a", lambda user: Waiting("a", "A things", 2, "/a/"))
    assert waiting_for(AnonymousUser()) == []
