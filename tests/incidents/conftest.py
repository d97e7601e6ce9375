"""Fixtures for incidents: a Sev2 declared by an engineer of the team (the commander), a gateway key."""

import pytest
from django.test import Client

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


@pytest.fixture
def bearer():
    """bearer(secret) -> a test client that sends `Authorization: Bearer <secret>` (the API as scripts call it)."""
    return lambda secret: Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


@pytest.fixture
def write(bearer, engineer, team, token_for):
    """The API as the team's engineer (the commander of `declare`'s incidents) with a write token."""
    return bearer(token_for(engineer, team, "write")[1])


@pytest.fixture
def read(bearer, viewer, team, token_for):
    """The API as the team's viewer with a read token."""
    return bearer(token_for(viewer, team, "read")[1])
