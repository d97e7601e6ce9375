"""The team page's "what this team owns": a registry accounts keeps and the apps above fill at start-up, so
accounts never imports them (issue #13)."""

import pytest

from apps.accounts import ownership
from apps.accounts.ownership import owned_by_team, register_owned_counter


@pytest.fixture
def counters(monkeypatch):
    monkeypatch.setattr(ownership, "_COUNTERS", dict(ownership._COUNTERS))


class TestOwnedCounters:
    def test_accounts_and_costs_register_their_counters_at_start_up(self, team):
        labels = [row["label"] for row in owned_by_team(team)]
        assert labels == ["API tokens", "Usage events (all time)", "Budgets", "Gateway keys (not revoked)"]  # INSTALLED_APPS order
        assert all(row["count"] == 0 for row in owned_by_team(team))  # a new team owns nothing

    def test_an_app_adds_a_counter_and_registering_a_label_again_replaces_it(self, team, counters):
        register_owned_counter("Datasets", lambda t: 3)
        register_owned_counter("Datasets", lambda t: 4)
        rows = owned_by_team(team)
        assert rows[-1] == {"label": "Datasets", "count": 4}
        assert [row["label"] for row in rows].count("Datasets") == 1
