"""GET /api/v1/audit/events: the same visibility and filters as the page, paged by id."""

import pytest

from apps.audit.services import audit_record


@pytest.fixture
def events(team, other_team, engineer):
    for i in range(7):
        audit_record(action=f"test.step.{i}", team=team, user=engineer, changes={"i": i})
    audit_record(action="test.elsewhere", team=other_team)


@pytest.fixture
def reader(team, engineer, token_for, client):
    _, secret = token_for(engineer, team, "read")
    return lambda url: client.get(url, HTTP_AUTHORIZATION=f"Bearer {secret}")


@pytest.mark.django_db
def test_pages_walk_backwards_by_id_without_overlap(events, reader):
    first = reader("/api/v1/audit/events?action=test.step&limit=4").json()
    rest = reader(f"/api/v1/audit/events?action=test.step&limit=4&before={first[-1]['id']}").json()
    assert [e["changes"]["i"] for e in first + rest] == [6, 5, 4, 3, 2, 1, 0]


@pytest.mark.django_db
def test_a_token_sees_its_team_only_and_no_ip(events, reader):
    body = reader("/api/v1/audit/events").json()
    assert "test.elsewhere" not in {e["action"] for e in body}
    assert all(e["ip"] is None for e in body)
    assert {"hash", "prev_hash", "hash_version"} <= set(body[0])


@pytest.mark.django_db
def test_an_ingest_token_is_told_to_use_a_read_token(events, team, engineer, token_for, client):
    _, secret = token_for(engineer, team, "ingest")
    response = client.get("/api/v1/audit/events", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 403 and "use a read token" in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "before=0", "date_from=yesterday"])
def test_bad_parameters_are_a_422_not_a_500(events, reader, query):
    response = reader(f"/api/v1/audit/events?{query}")
    assert response.status_code == 422


@pytest.mark.django_db
def test_an_inverted_date_range_names_the_field(events, reader):
    response = reader("/api/v1/audit/events?date_from=2026-05-02&date_to=2026-05-01")
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "date_to", "message": "The end date is before the start date."}]
