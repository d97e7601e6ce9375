"""One bad value never costs a usage batch: the event is rejected with its index and reason and the rest is
written; events outside the ingest window (older than the raw retention, or ahead of the clock by more than
COSTS_INGEST_FUTURE_SKEW_SECONDS) are refused with the reason."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from apps.costs.models import UsageEvent
from tests.costs.conftest import event

pytestmark = pytest.mark.django_db

URL = "/api/v1/usage"


def recent(n: int, **overrides) -> dict:
    return event(n, **{"occurred_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(), **overrides})


@pytest.fixture
def send(ingest_token):
    _, secret = ingest_token
    client = Client(raise_request_exception=False)

    def post(path, body: str):
        return client.post(path, data=body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}")

    return post


def test_unstorable_text_and_odd_values_reject_only_their_event(send, prices):
    import json

    batch = [
        recent(0),
        recent(1, request_id="nul\x00"),
        recent(2, model="gpt\x00"),
        recent(3, feature="x\ud800"),
        recent(4, team="²"),
        recent(5, occurred_at="0001-01-01T00:00:00+14:00"),
        recent(6, tenant={"deep": [[[[["x"]]]]]}),
        recent(7),
    ]

    response = send(URL, json.dumps({"events": batch}))

    assert response.status_code == 200, response.content
    body = response.json()
    reasons = {r["index"]: " ".join(r["errors"]) for r in body["rejected"]}
    assert (body["accepted"], sorted(reasons)) == (2, [1, 2, 3, 4, 5, 6])
    assert "request_id contains a NUL" in reasons[1] and "model contains a NUL" in reasons[2]
    assert "feature contains a lone surrogate" in reasons[3]
    assert "there is no team '²'" in reasons[4]
    assert "out of range" in reasons[5]
    assert "nested deeper" in reasons[6]
    assert set(UsageEvent.objects.values_list("request_id", flat=True)) == {"req-0", "req-7"}


def test_a_list_or_object_where_a_choice_belongs_rejects_only_its_event(send, prices):
    """Found by schemathesis: `"source": []` reached a set lookup (unhashable) and answered 500."""
    import json

    batch = [recent(0), recent(1, source=["sdk"]), recent(2, status={"ok": 1}), recent(3, outcome=[]),
             recent(4, operation={}), recent(5)]

    response = send(URL, json.dumps({"events": batch}))

    assert response.status_code == 200, response.content
    body = response.json()
    reasons = {r["index"]: " ".join(r["errors"]) for r in body["rejected"]}
    assert (body["accepted"], sorted(reasons)) == (2, [1, 2, 3, 4])
    assert "source must be one of" in reasons[1] and "operation must be one of" in reasons[4]
    assert set(UsageEvent.objects.values_list("request_id", flat=True)) == {"req-0", "req-5"}


def test_events_older_than_the_retention_or_ahead_of_the_clock_are_refused_with_the_reason(send, prices, settings):
    import json

    settings.COSTS_RAW_RETENTION_DAYS = 30
    settings.COSTS_INGEST_FUTURE_SKEW_SECONDS = 120
    now = datetime.now(UTC)
    batch = [recent(0, occurred_at="1900-01-01T00:00:00Z"),
             recent(1, occurred_at=(now - timedelta(days=31)).isoformat()),
             recent(2, occurred_at=(now + timedelta(minutes=5)).isoformat()),
             recent(3, occurred_at=(now + timedelta(seconds=30)).isoformat()),
             recent(4, occurred_at=(now - timedelta(days=29)).isoformat())]

    body = send(URL, json.dumps({"events": batch})).json()

    reasons = {r["index"]: " ".join(r["errors"]) for r in body["rejected"]}
    assert "older than the 30 days" in reasons[0] and "older than the 30 days" in reasons[1]
    assert "in the future (more than 120 seconds" in reasons[2]
    assert body["accepted"] == 2 and sorted(reasons) == [0, 1, 2]


def test_a_body_nested_too_deeply_to_read_is_a_400(send):
    response = send(URL, "[" * 200_000)

    assert response.status_code == 400 and "nested too deeply" in response.json()["detail"]


def test_an_outcome_with_unstorable_text_is_rejected_alone(send, prices):
    import json

    send(URL, json.dumps({"events": [recent(0)]}))

    response = send("/api/v1/usage/outcomes", json.dumps({"outcomes": [
        {"request_id": "a\x00", "outcome": "success"}, {"request_id": "req-0", "outcome": "success"}]}))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["updated"] == 1 and body["rejected"][0]["index"] == 0
    assert "NUL" in body["rejected"][0]["errors"][0]


@pytest.mark.parametrize("query,field", [("team=%C2%B2", "team"), ("from=0001-01-01T00:00:00%2B14:00", "from/to"),
                                         ("team=99999999999999999999999", "team")])
def test_the_summary_refuses_odd_filters_with_a_422(client_for, admin_user, query, field):
    client = client_for(admin_user)
    client.raise_request_exception = False

    response = client.get(f"/api/v1/usage/summary?{query}")

    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["field"] == field
