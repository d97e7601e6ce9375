"""The scorecard pages and API: who may see them, who may change targets (and who may not), the audit event and
history of each change, bad input, the portfolio's filters and exports, and the compact scorecard elsewhere."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.scorecards import services
from apps.scorecards.models import KpiTarget, TargetChange

pytestmark = pytest.mark.django_db


@pytest.fixture
def scored(use_case):
    services.scorecards_refresh()
    return use_case


def _set(client, use_case, **data):
    return client.post(reverse("scorecards:target_set", args=[use_case.pk]), data)


@pytest.mark.parametrize("who", ["pm", "owner", "admin_user"])
def test_the_business_owner_team_owners_and_admins_may_change_a_target(who, request, client_for, scored):
    actor = request.getfixturevalue(who)
    response = _set(client_for(actor), scored, kpi="latency_p95", value="7000", reason="new SLA")
    assert response.status_code == 302
    assert KpiTarget.objects.get(use_case=scored, kpi="latency_p95").value == 7000
    change = TargetChange.objects.get(use_case=scored)
    assert (change.old_value, change.new_value, change.actor) == (None, 7000, actor)
    event = AuditEvent.objects.get(action="scorecards.target_set")
    assert event.changes["target"] == [None, 7000]


@pytest.mark.parametrize(("who", "status"), [("engineer", 403), ("viewer", 403), ("council_member", 403),
                                             ("outsider", 404)])
def test_others_may_not_change_targets(who, status, request, client_for, scored):
    response = _set(client_for(request.getfixturevalue(who)), scored, kpi="latency_p95", value="1")
    assert response.status_code == status
    assert not KpiTarget.objects.exists() and not AuditEvent.objects.filter(action__startswith="scorecards").exists()


def test_the_council_sees_the_change_history(client_for, scored, pm, council_member):
    services.kpi_target_set(actor=pm, use_case=scored, kpi="task_success", value=0.85, reason="baseline 0.8")
    page = client_for(council_member).get(reverse("scorecards:use_case", args=[scored.pk]))
    assert page.status_code == 200
    assert b"baseline 0.8" in page.content and b"mia-pm" in page.content
    assert b'id="target-form"' not in page.content


def test_a_bad_target_is_refused_with_a_message_and_changes_nothing(client_for, scored, pm):
    response = _set(client_for(pm), scored, kpi="task_success", value="85")
    assert response.status_code == 400
    assert "between 0 and 1" in response.content.decode()
    assert _set(client_for(pm), scored, kpi="nope", value="1").status_code == 400
    assert not TargetChange.objects.exists()


def test_target_users_are_audited_and_feed_adoption(client_for, scored, pm):
    response = client_for(pm).post(reverse("scorecards:target_users_set", args=[scored.pk]),
                                   {"target_users": "500", "reason": "launch"})
    assert response.status_code == 302
    assert TargetChange.objects.get(kpi="target_users").new_value == 500
    assert AuditEvent.objects.filter(action="scorecards.target_users_set").exists()


def test_the_portfolio_shows_visible_use_cases_filters_and_exports(client_for, scored, viewer, outsider):
    page = client_for(viewer).get(reverse("scorecards:portfolio"))
    assert page.status_code == 200 and b"Refund assistant" in page.content
    assert b"Refund assistant" not in client_for(outsider).get(reverse("scorecards:portfolio")).content
    filtered = client_for(viewer).get(reverse("scorecards:portfolio"), {"status": "met"}, HTTP_HX_REQUEST="true")
    assert b"Refund assistant" not in filtered.content and b"<html" not in filtered.content
    csv = client_for(viewer).get(reverse("scorecards:portfolio"), {"format": "csv"})
    assert csv["Content-Type"].startswith("text/csv") and b"latency_p95_status" in csv.content
    data = client_for(viewer).get(reverse("scorecards:portfolio"), {"format": "json"}).json()
    assert data["use_cases"][0]["kpis"]["mttr"]["status"] == "no_data"
    assert client_for(None).get(reverse("scorecards:portfolio")).status_code == 302


def test_the_portfolio_lists_worst_first_fifty_a_page_counting_the_whole_portfolio(client_for, team, pm, viewer,
                                                                                 django_assert_max_num_queries):
    from apps.reviews.models import UseCase
    from apps.scorecards.models import ScorecardSnapshot, Status
    from apps.scorecards.views import PAGE_SIZE

    use_cases = UseCase.objects.bulk_create([
        UseCase(team=team, title=f"Case {i:03}", purpose="p", state="active", tier="low", business_owner=pm)
        for i in range(PAGE_SIZE + 5)])
    worst = use_cases[-1]  # the last by title, but the only one with missed KPIs
    ScorecardSnapshot.objects.bulk_create([
        ScorecardSnapshot(use_case=uc, team_id=team.pk, tier="low", met=1, missed=2 if uc == worst else 0,
                          status=Status.MISSED if uc == worst else Status.MET) for uc in use_cases])
    client = client_for(viewer)
    url = reverse("scorecards:portfolio")
    client.get(url)  # warm the session and caches: the query count below is the page's own
    with django_assert_max_num_queries(15):
        first = client.get(url).content.decode()
    assert first.index("Case 054") < first.index("Case 000")  # worst first
    assert "Case 050" not in first and f"Use cases ({PAGE_SIZE + 5})" in first
    assert 'data-status="missed">1 missed' in first and f">{PAGE_SIZE + 4} met" in first
    more = client.get(url, {"page": 2, "rows": 1}, HTTP_HX_REQUEST="true").content.decode()
    assert "Case 050" in more and "Case 000" not in more and "<html" not in more and "Show the next" not in more
    only_met = client.get(url, {"status": "met", "page": 2, "rows": 1}, HTTP_HX_REQUEST="true").content.decode()
    assert "Case 053" in only_met and "Case 054" not in only_met  # the filters are kept on the next page
    assert client.get(url, {"page": "x"}).status_code == 200


def test_the_use_case_page_register_and_exports_show_the_scorecard(client_for, scored, viewer):
    client = client_for(viewer)
    detail = client.get(reverse("reviews:detail", args=[scored.pk]))
    assert b"KPI scorecard" in detail.content and b"Full scorecard" in detail.content
    register = client.get(reverse("reviews:list"))
    assert reverse("scorecards:use_case", args=[scored.pk]).encode() in register.content
    csv = client.get(reverse("scorecards:use_case", args=[scored.pk]), {"format": "csv"})
    assert b"latency_p95" in csv.content
    page = client.get(reverse("scorecards:use_case", args=[scored.pk]), {"kpi": "task_success"})
    assert page.context["focus"]["kpi"].key == "task_success" and b"No outcomes reported" in page.content


def test_the_api_answers_the_scorecard_to_a_token_and_hides_others(client, scored, viewer, outsider, team,
                                                                   other_team, token_for):
    _token, secret = token_for(viewer, team)
    url = f"/api/v1/use-cases/{scored.pk}/scorecard"
    body = client.get(url, HTTP_AUTHORIZATION=f"Bearer {secret}").json()
    kpis = {k["kpi"]: k for k in body["kpis"]}
    assert body["use_case"] == scored.pk and kpis["latency_p95"]["status"] == "no_data"
    assert kpis["latency_p95"]["detail"] and len(kpis["latency_p95"]["trend"]) == 8
    _t, other = token_for(outsider, other_team)
    assert client.get(url, HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 404
    assert client.get(url).status_code == 401


def test_the_home_page_lists_use_cases_missing_kpis(client_for, use_case, pm, team, key, yesterday):
    from apps.gateway.models import TrafficDaily

    TrafficDaily.objects.create(day=yesterday, team_id=team.pk, gateway_key_id=key.pk, requests=100, errors=20)
    services.scorecards_refresh()
    home = client_for(pm).get("/")
    assert b"KPIs missing their targets" in home.content and b"Refund assistant" in home.content


def test_the_incident_suggestion_link_prefills_the_declare_form(client_for, engineer, team, use_case):
    page = client_for(engineer).get(reverse("incidents:declare"), {"title": "P95 missed", "use_cases": use_case.pk,
                                                                  "severity": "3", "team": team.slug})
    assert page.status_code == 200
    form = page.context["form"]
    assert not form.is_bound and form.initial["title"] == "P95 missed"
    assert b'value="P95 missed"' in page.content


def test_anyone_who_sees_the_use_case_may_ask_for_a_refresh(client_for, scored, viewer, outsider, monkeypatch,
                                                            django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr(services, "_queue_refresh", queued.append)
    url = reverse("scorecards:refresh", args=[scored.pk])
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for(outsider).post(url).status_code == 404
        assert client_for(viewer).post(url).status_code == 302
    assert queued == [[scored.pk]]
