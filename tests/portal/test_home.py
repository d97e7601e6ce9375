import pytest

from apps.audit.services import audit_record
from portal.request_context import acting_as
from tests.factories import UsageEventFactory


def test_home_page_sends_anonymous_people_to_login(client, db):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_home_page_shows_each_area_and_the_viewers_teams(client_for, engineer, team):
    response = client_for(engineer).get("/")
    body = response.content.decode()
    assert response.status_code == 200
    for label in ("Prompts", "Use cases", "Evals", "Costs", "RAG", "Audit"):
        assert f">{label}</a>" in body
    assert team.name in body


def test_home_page_spend_counts_only_teams_the_viewer_may_see(client_for, engineer, team, other_team):
    UsageEventFactory(team=team, cost="1.50")
    UsageEventFactory(team=other_team, cost="99.00")
    UsageEventFactory(team=team, cost=None)  # unpriced: counted as such, never as $0
    response = client_for(engineer).get("/")
    summary = response.context["summary"]
    assert summary.spend_30d == pytest.approx(1.5)
    assert summary.calls_30d == 2
    assert summary.unpriced_30d == 1


def test_home_page_query_count_does_not_grow_with_activity(client_for, engineer, team, django_assert_max_num_queries):
    client = client_for(engineer)
    client.get("/")  # warm per-process caches (content types)
    with django_assert_max_num_queries(9):
        client.get("/")
    with acting_as(engineer):
        for n in range(40):
            audit_record(action="test.event", obj=team, changes={"n": n})
    for _ in range(20):
        UsageEventFactory(team=team, cost="0.01")
    with django_assert_max_num_queries(9):
        response = client.get("/")
    assert len(response.context["summary"].recent_events) == 8
