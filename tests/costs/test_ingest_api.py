"""POST /api/v1/usage: batches are priced at ingest, idempotent by request id, and bad events are named."""

from decimal import Decimal

import pytest

from apps.audit.models import AuditEvent
from apps.costs.models import UsageEvent, UsageRollup
from tests.costs.conftest import event, money

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("march_2025_is_recent")]

URL = "/api/v1/usage"


def test_a_batch_is_priced_at_ingest_with_cached_tokens_and_written_once(api, ingest_token, prices, team):
    _, secret = ingest_token
    batch = [event(1, cached_input_tokens=800), event(2, model="gpt-4o", output_tokens=0)]

    response = api(secret).post(URL, {"events": batch})

    assert response.status_code == 200, response.content
    assert response.json() == {"received": 2, "accepted": 2, "duplicates": 0, "unpriced": 0, "rejected": []}
    first = UsageEvent.objects.get(request_id="req-1")
    # 200 uncached at $0.15 + 800 cached at $0.075 + 200 out at $0.60, per million
    assert first.cost == money((200 * Decimal("0.15") + 800 * Decimal("0.075") + 200 * Decimal("0.60")) / 10**6)
    assert first.price == prices["gpt-4o-mini"] and first.team_id == team.pk and first.source == "api"
    assert UsageEvent.objects.get(request_id="req-2").cost == money(1000 * Decimal("2.50") / 10**6)


def test_resending_a_batch_changes_nothing(api, ingest_token, prices):
    _, secret = ingest_token
    batch = [event(i) for i in range(5)]
    api(secret).post(URL, {"events": batch})
    audits = AuditEvent.objects.filter(action="usage.ingest").count()
    rollup_before = list(UsageRollup.objects.values_list("requests", "cost"))

    again = api(secret).post(URL, {"events": batch}).json()

    assert (again["accepted"], again["duplicates"]) == (0, 5)
    assert UsageEvent.objects.count() == 5
    assert list(UsageRollup.objects.values_list("requests", "cost")) == rollup_before
    assert AuditEvent.objects.filter(action="usage.ingest").count() == audits  # nothing new, nothing audited


def test_bad_events_are_rejected_by_index_and_the_good_ones_kept(api, ingest_token, prices, other_team):
    _, secret = ingest_token
    batch = [
        event(0),
        event(1, input_tokens=-3),
        event(2, request_id=""),
        event(3, cached_input_tokens=5000),
        event(4, occurred_at="yesterday"),
        event(5, team=other_team.slug),
        event(6, prompt_text="secret prompt"),
        event(7, source="cli"),
        event(0),  # same request id twice in one batch
        "not an object",
        event(10),
    ]

    body = api(secret).post(URL, {"events": batch}).json()

    assert (body["received"], body["accepted"]) == (11, 2)
    reasons = {r["index"]: " ".join(r["errors"]) for r in body["rejected"]}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert "input_tokens must be a whole number" in reasons[1]
    assert "request_id is required" in reasons[2]
    assert "cached_input_tokens cannot exceed input_tokens" in reasons[3]
    assert "ISO 8601" in reasons[4]
    assert "may not send usage for team 'search'" in reasons[5]
    assert "never stored" in reasons[6]
    assert "source must be one of" in reasons[7]
    assert "twice" in reasons[8]
    assert "JSON object" in reasons[9]
    assert set(UsageEvent.objects.values_list("request_id", flat=True)) == {"req-0", "req-10"}


def test_a_model_without_a_price_is_kept_and_flagged_unpriced_never_zero(api, ingest_token, prices):
    _, secret = ingest_token

    body = api(secret).post(URL, {"events": [event(1, model="my-finetune")]}).json()

    assert (body["accepted"], body["unpriced"]) == (1, 1)
    assert UsageEvent.objects.get().cost is None
    day = UsageRollup.objects.get(granularity="day")
    assert (day.unpriced, day.cost, day.requests) == (1, 0, 1)


def test_the_price_valid_at_the_events_time_is_used(api, ingest_token, prices):
    from datetime import UTC, datetime

    from apps.costs.services import price_set

    later = price_set(model_name="gpt-4o-mini", input_per_mtok="0.10", output_per_mtok="0.40",
                      valid_from=datetime(2025, 4, 1, tzinfo=UTC))
    _, secret = ingest_token

    api(secret).post(URL, {"events": [event(1, occurred_at="2025-03-31T23:59:59Z"),
                                      event(2, occurred_at="2025-04-01T00:00:00Z")]})

    assert UsageEvent.objects.get(request_id="req-1").price == prices["gpt-4o-mini"]
    assert UsageEvent.objects.get(request_id="req-2").price == later


def test_one_audit_event_per_batch_names_the_token(api, ingest_token, prices):
    token, secret = ingest_token

    api(secret).post(URL, {"events": [event(i) for i in range(20)]})

    audit = AuditEvent.objects.get(action="usage.ingest")
    assert audit.actor_token_id == token.pk and audit.changes["accepted"] == 20


@pytest.mark.parametrize("body,status,message", [
    ("{not json", 400, "not valid JSON"),
    ({"events": "nope"}, 400, "list of events"),
    ({"events": [{}] * 1001}, 400, "at most 1000"),
])
def test_an_unreadable_envelope_is_a_clear_4xx(api, ingest_token, body, status, message):
    _, secret = ingest_token

    response = api(secret).post(URL, body)

    assert response.status_code == status and message in response.json()["detail"]


def test_a_read_only_token_may_not_ingest_and_anonymous_is_401(api, client, engineer, team, token_for):
    _, secret = token_for(engineer, team, scope="read")

    assert api(secret).post(URL, {"events": [event(1)]}).status_code == 403
    assert client.post(URL, data="{}", content_type="application/json").status_code == 401


def test_a_write_token_may_ingest_for_its_team(api, engineer, team, token_for, prices):
    _, secret = token_for(engineer, team, scope="write")

    assert api(secret).post(URL, {"events": [event(1)]}).json()["accepted"] == 1


def test_a_viewer_cannot_hold_an_ingest_token_so_a_viewers_session_cannot_ingest(client_for, viewer, prices):
    response = client_for(viewer).post(URL, data={"events": [event(1)]}, content_type="application/json")

    assert response.status_code == 200  # the envelope is fine; each event is refused for the team
    assert response.json()["accepted"] == 0
