import pytest

from apps.audit.services import audit_record
from apps.core.request_context import acting_as
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


def test_home_says_the_demo_is_still_loading_until_it_is_done(client_for, engineer):
    from apps.core.demo_status import demo_loading_marker

    with demo_loading_marker():
        home = client_for(engineer).get("/").content.decode()
        glance = client_for(engineer).get("/costs/glance/").content.decode()
        assert 'id="demo-loading"' in home
        assert 'data-testid="glance-demo-loading"' in glance and "No budgets yet" not in glance
        assert 'hx-trigger="every 5s"' in glance  # the card refreshes itself while the demo lands
    home = client_for(engineer).get("/").content.decode()
    glance = client_for(engineer).get("/costs/glance/").content.decode()
    assert 'id="demo-loading"' not in home and "every 5s" not in glance and "No budgets yet" in glance


def test_a_failed_demo_load_does_not_leave_the_banner_behind(client_for, engineer):
    from apps.core.demo_status import demo_loading, demo_loading_marker

    with pytest.raises(RuntimeError), demo_loading_marker():
        assert demo_loading()
        raise RuntimeError("seed failed")
    assert not demo_loading()


def test_seed_demo_marks_the_load_while_it_runs(monkeypatch, db):
    from django.core.management import call_command

    from apps.core.demo_status import demo_loading

    seen = []
    monkeypatch.setattr("portal.management.commands.seed_demo.seed_demo", lambda: seen.append(demo_loading()))
    call_command("seed_demo")
    assert seen == [True] and not demo_loading()


def test_home_page_query_count_does_not_grow_with_activity(client_for, engineer, team, django_assert_max_num_queries):
    client = client_for(engineer)
    client.get("/")  # warm per-process caches (content types)
    with django_assert_max_num_queries(10):  # 10: the scorecards' "KPIs missing their targets" is one query
        client.get("/")
    with acting_as(engineer):
        for n in range(40):
            audit_record(action="test.event", obj=team, changes={"n": n})
    for _ in range(20):
        UsageEventFactory(team=team, cost="0.01")
    with django_assert_max_num_queries(10):
        response = client.get("/")
    assert len(response.context["summary"].recent_events) == 8
