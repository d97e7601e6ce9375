"""Fixtures for incidents: a Sev2 declared by an engineer of the team (the commander), a gateway key."""

import pytest

from apps.incidents import services
from tests.gateway.conftest import drain, gateway_key, gateway_server, gateway_url, local_catalog  # noqa: F401


@pytest.fixture
def declare(team, engineer):
    """declare(**changes) -> an incident declared through the service (by the team's engineer, the commander)."""

    def make(actor=None, **changes):
        values = {"title": "Refund bot gives wrong refund windows", "kind": "incorrect_outputs", "severity": 2}
        values.update(changes)
        return services.incident_declare(actor=actor or engineer, team=changes.pop("team", team),
                                         **{k: v for k, v in values.items() if k != "team"})

    return make


@pytest.fixture
def incident(declare):
    return declare()
