"""The audit log page: filters via htmx on the same URL, pagination, streamed export, the chain indicator."""

import datetime as dt
import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.services import api_token_create, membership_set
from apps.audit.models import AuditEvent, ChainVerification, VerificationStatus
from apps.audit.services import audit_record
from apps.audit.views import PAGE_SIZE
from portal.request_context import acting_as


def text(response) -> str:
    return response.content.decode()


def row_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<td class="num mono">(\d+)</td>', html)]


def export_rows(response) -> list[dict]:
    return [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]


@pytest.fixture
def log(team, other_team, owner, engineer, outsider, nobody):
    """A small log: team events by two people, another team's event, a teamless one, and an old one."""
    with acting_as(owner, ip="10.1.1.1"):
        membership_set(team=team, user=nobody, role="viewer")  # team.member.add
    token = api_token_create(team=team, user=engineer, name="ci", actor=engineer).token  # api_token.create
    audit_record(action="prompt.version.create", team=team, user=engineer, object_type="prompts.prompt",
                 object_id="42", object_repr="support-triage")
    audit_record(action="prompt.version.create", team=other_team, user=outsider, object_type="prompts.prompt",
                 object_id="7", object_repr="search-rewrite")
    audit_record(action="user.password.change", user=nobody, obj=nobody, object_repr="nina-nobody")
    return {"token": token}


@pytest.mark.django_db
class TestFilters:
    @pytest.mark.parametrize(("query", "expected_actions"), [
        ("actor=olivia", ["team.member.add"]),
        ("actor=EVAN", ["prompt.version.create", "api_token.create"]),
        ("team=search", ["prompt.version.create"]),
        ("action=prompt.", ["prompt.version.create", "prompt.version.create"]),
        ("action=api_token", ["api_token.create"]),
        ("object_type=prompts.prompt&object_id=42", ["prompt.version.create"]),
        ("object_type=auth.user", ["user.password.change"]),
    ])
    def test_each_filter_narrows_the_table(self, client_for, admin_user, log, query, expected_actions):
        response = client_for(admin_user).get(f"/audit/?{query}", HTTP_HX_REQUEST="true")
        found = re.findall(r'<span class="badge">([a-z_.]+)</span>', text(response))
        assert found == expected_actions

    def test_the_date_range_is_inclusive_of_both_days(self, client_for, admin_user, log):
        today = timezone.localdate()
        client = client_for(admin_user)
        assert len(row_ids(text(client.get(f"/audit/?date_from={today}&date_to={today}")))) == 5
        yesterday = today - dt.timedelta(days=1)
        assert row_ids(text(client.get(f"/audit/?date_to={yesterday}"))) == []

    def test_the_same_url_serves_the_page_and_the_fragment(self, client_for, admin_user, log):
        client = client_for(admin_user)
        page = client.get("/audit/?action=prompt.")
        fragment = client.get("/audit/?action=prompt.", HTTP_HX_REQUEST="true")
        assert "<html" in text(page) and "<html" not in text(fragment)
        assert "<form" not in text(fragment)  # only the results are swapped
        assert row_ids(text(page)) == row_ids(text(fragment)) and len(row_ids(text(page))) == 2
        assert "HX-Request" in fragment["Vary"] and "HX-Request" in page["Vary"]

    def test_a_history_restore_gets_the_full_page(self, client_for, admin_user, log):
        response = client_for(admin_user).get("/audit/", HTTP_HX_REQUEST="true",
                                              HTTP_HX_HISTORY_RESTORE_REQUEST="true")
        assert "<html" in text(response)

    def test_an_inverted_date_range_is_explained_and_not_applied(self, client_for, admin_user, log):
        response = client_for(admin_user).get("/audit/?date_from=2026-05-02&date_to=2026-05-01",
                                              HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        assert "These filters were not applied" in text(response)
        assert "The end date is before the start date." in text(response)

    def test_an_unknown_team_or_bad_date_is_a_message_not_an_error(self, client_for, engineer, log):
        response = client_for(engineer).get("/audit/?team=search&date_from=someday")
        page = text(response)
        assert response.status_code == 200
        assert "You see no team with the slug search." in page and "Enter a valid date." in page

    def test_a_filter_never_widens_what_one_sees(self, client_for, engineer, log):
        page = text(client_for(engineer).get("/audit/?action=prompt."))
        assert "support-triage" in page and "search-rewrite" not in page


@pytest.mark.django_db
class TestPagination:
    def test_pages_hold_fifty_and_keep_the_filters(self, client_for, admin_user, team):
        for i in range(PAGE_SIZE + 5):
            audit_record(action="test.bulk", team=team, changes={"i": i})
        audit_record(action="other.thing", team=team)
        client = client_for(admin_user)
        first = text(client.get("/audit/?action=test."))
        assert len(row_ids(first)) == PAGE_SIZE and "Page 1 of 2" in first
        assert 'href="?action=test.&amp;page=2"' in first
        second = text(client.get("/audit/?action=test.&page=2", HTTP_HX_REQUEST="true"))
        assert len(row_ids(second)) == 5
        assert set(row_ids(first)).isdisjoint(row_ids(second))
        assert max(row_ids(second)) < min(row_ids(first))  # newest first

    def test_a_page_past_the_end_shows_the_last(self, client_for, admin_user, log):
        response = client_for(admin_user).get("/audit/?page=999")
        assert response.status_code == 200 and len(row_ids(text(response))) == 5


@pytest.mark.django_db
def test_the_page_query_count_does_not_grow_with_events(client_for, admin_user, team, other_team, engineer,
                                                        django_assert_max_num_queries):
    token = api_token_create(team=team, user=engineer, name="ci").token

    def add_events(n):  # events of every linked kind (teams, tokens, unlinked), across teams
        for i in range(n):
            audit_record(action="test.many", obj=[team, other_team][i % 2])
            audit_record(action="test.many", obj=token)
            audit_record(action="test.many", team=team, object_type="prompts.prompt", object_id=str(i))

    add_events(1)
    client = client_for(admin_user)
    client.get("/audit/")  # warm the session

    def count_queries():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/audit/").status_code == 200
        return len(ctx)

    few = count_queries()
    add_events(60)
    with django_assert_max_num_queries(10):
        assert client.get("/audit/").status_code == 200
    assert count_queries() == few


@pytest.mark.django_db
class TestLinksAndColumns:
    def test_objects_link_to_their_pages_where_there_is_one(self, client_for, admin_user, team, log):
        page = text(client_for(admin_user).get("/audit/"))
        assert '<a href="/accounts/teams/support-ai/">Support AI</a>' in page  # a team event
        assert '<a href="/accounts/teams/support-ai/#tokens">ci (gp_' in page  # a token event
        assert re.search(r"<td[^>]*>support-triage\s*<span", page)  # no resolver for prompts yet: no link
        assert '<a class="mono small" href="/accounts/teams/search/">search</a>' in page  # the team column

    def test_ip_addresses_are_shown_to_admins_and_council_only(self, client_for, admin_user, council_member,
                                                               owner, log):
        assert "10.1.1.1" in text(client_for(admin_user).get("/audit/"))
        assert "10.1.1.1" in text(client_for(council_member).get("/audit/"))
        assert "10.1.1.1" not in text(client_for(owner).get("/audit/"))
        rows = export_rows(client_for(owner).get("/audit/export.jsonl"))
        assert rows and all(row["ip"] is None for row in rows)


@pytest.mark.django_db
class TestExport:
    def test_the_export_is_streamed_jsonl_of_the_filtered_set_in_chain_order(self, client_for, admin_user, log):
        response = client_for(admin_user).get("/audit/export.jsonl?action=prompt.")
        assert response.streaming
        assert response["Content-Type"].startswith("application/x-ndjson")
        assert "attachment" in response["Content-Disposition"] and response["Cache-Control"] == "no-store"
        rows = export_rows(response)
        assert [r["object_repr"] for r in rows] == ["support-triage", "search-rewrite"]
        assert rows[0]["id"] < rows[1]["id"]
        assert set(rows[0]) >= {"hash", "prev_hash", "hash_version", "changes", "actor", "occurred_at"}

    def test_the_export_link_carries_the_current_filters(self, client_for, admin_user, log):
        fragment = text(client_for(admin_user).get("/audit/?action=prompt.&actor=evan", HTTP_HX_REQUEST="true"))
        assert 'href="/audit/export.jsonl?action=prompt.&amp;actor=evan"' in fragment

    def test_an_export_with_a_bad_filter_exports_nothing_and_says_why(self, client_for, admin_user, log):
        response = client_for(admin_user).get("/audit/export.jsonl?date_from=2026-02-30")
        assert response.status_code == 400
        assert "Nothing was exported." in text(response) and "Enter a valid date." in text(response)

    def test_an_export_holds_only_what_the_person_may_see(self, client_for, outsider, log):
        rows = export_rows(client_for(outsider).get("/audit/export.jsonl"))
        assert [r["object_repr"] for r in rows] == ["search-rewrite"]


@pytest.mark.django_db
class TestChainIndicator:
    def test_admins_see_the_indicator_and_others_do_not(self, client_for, admin_user, council_member, log):
        assert "chain not verified yet" in text(client_for(admin_user).get("/audit/"))
        assert 'id="chain-status"' not in text(client_for(council_member).get("/audit/"))

    def test_verify_now_queues_a_run_that_reports_an_intact_chain(self, client_for, admin_user, log, monkeypatch,
                                                                  django_capture_on_commit_callbacks):
        from apps.audit import tasks

        monkeypatch.setattr(tasks.audit_chain_verify_task, "delay", lambda pk: tasks.audit_chain_verify_task(pk))
        client = client_for(admin_user)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/audit/verify/", HTTP_HX_REQUEST="true")
        assert response.status_code == 200 and "<html" not in text(response)
        run = ChainVerification.objects.get()
        assert (run.status, run.intact, run.progress_done, run.requested_by) == (
            VerificationStatus.DONE, True, 5, admin_user)
        page = text(client.get("/audit/"))
        assert "chain intact" in page and f"#{run.head_id}" in page
        assert AuditEvent.objects.filter(action="audit.chain.verify", actor_label="ada-admin").count() == 1

    def test_a_queued_run_polls_and_a_second_request_reuses_it(self, client_for, admin_user, log,
                                                                django_capture_on_commit_callbacks):
        client = client_for(admin_user)
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            first = client.post("/audit/verify/", HTTP_HX_REQUEST="true")
            client.post("/audit/verify/", HTTP_HX_REQUEST="true")
        assert ChainVerification.objects.count() == 1 and len(callbacks) == 1
        assert 'hx-trigger="every 2s"' in text(first) and "verification queued" in text(first)
        ChainVerification.objects.update(status=VerificationStatus.RUNNING, progress_done=3, progress_total=5)
        polled = text(client.get("/audit/verify/", HTTP_HX_REQUEST="true"))
        assert "3 of about 5 events" in polled and 'hx-trigger="every 2s"' in polled

    def test_a_broken_chain_is_shown_with_its_first_broken_event(self, client_for, admin_user, log):
        ChainVerification.objects.create(status=VerificationStatus.DONE, intact=False, first_broken_id=3,
                                         reason="event #3 was altered after it was written",
                                         finished_at=timezone.now())
        page = text(client_for(admin_user).get("/audit/"))
        assert "chain broken at #3" in page and "event #3 was altered" in page
        assert 'hx-trigger="every 2s"' not in page

    def test_a_stalled_run_stops_polling_and_can_be_replaced(self, client_for, admin_user, log,
                                                             django_capture_on_commit_callbacks):
        ChainVerification.objects.create(created_at=timezone.now() - dt.timedelta(hours=2))
        client = client_for(admin_user)
        page = text(client.get("/audit/"))
        assert "stalled" in page and 'hx-trigger="every 2s"' not in page
        with django_capture_on_commit_callbacks(execute=False):
            client.post("/audit/verify/")
        assert ChainVerification.objects.count() == 2

    def test_a_broker_outage_shows_as_a_failed_run_not_an_error(self, client_for, admin_user, log, monkeypatch,
                                                                django_capture_on_commit_callbacks):
        from apps.audit import tasks

        def down(pk):
            raise ConnectionError("broker unreachable")

        monkeypatch.setattr(tasks.audit_chain_verify_task, "delay", down)
        client = client_for(admin_user)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/audit/verify/", HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        run = ChainVerification.objects.get()
        assert run.status == VerificationStatus.FAILED and "is the broker up?" in run.error
        assert "verification failed" in text(client.get("/audit/"))

    def test_a_plain_post_redirects_back_with_a_message(self, client_for, admin_user, log,
                                                         django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=False):
            response = client_for(admin_user).post("/audit/verify/")
        assert response.status_code == 302 and response["Location"] == "/audit/"

    @pytest.mark.parametrize("person", ["owner", "council_member", "nobody"])
    def test_only_admins_verify(self, request, client_for, person, log):
        client = client_for(request.getfixturevalue(person))
        assert client.post("/audit/verify/").status_code == 403
        assert client.get("/audit/verify/").status_code == 403
        assert not ChainVerification.objects.exists()
