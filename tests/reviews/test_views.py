"""Pages and the API: the permission matrix, progressive disclosure, intake errors, exports, no 500s."""

import json

import pytest

from apps.reviews import selectors, services
from apps.reviews.models import State, UseCase
from tests.reviews.conftest import ELEVATED_INTERNAL, LOW_ANSWERS

PEOPLE = ["anonymous", "nobody", "viewer", "outsider", "engineer", "owner", "council_member", "admin_user"]


def person(request, who):
    return None if who == "anonymous" else request.getfixturevalue(who)


@pytest.fixture
def use_case(make_use_case):
    return make_use_case(ELEVATED_INTERNAL, submit=True)


@pytest.mark.parametrize("who, status", [("anonymous", 302), ("nobody", 404), ("viewer", 200), ("outsider", 404),
                                         ("engineer", 200), ("owner", 200), ("council_member", 200),
                                         ("admin_user", 200)])
def test_use_case_page_matrix(request, client_for, use_case, who, status):
    response = client_for(person(request, who)).get(f"/use-cases/{use_case.pk}/")
    assert response.status_code == status


@pytest.mark.parametrize("who, sees", [("nobody", False), ("viewer", True), ("outsider", False),
                                       ("council_member", True), ("admin_user", True)])
def test_register_lists_only_visible_use_cases(request, client_for, use_case, who, sees):
    response = client_for(person(request, who)).get("/use-cases/")
    assert response.status_code == 200
    assert (use_case.title in response.content.decode()) is sees


def test_council_queue_shows_what_needs_my_vote(client_for, use_case, council_member):
    page = client_for(council_member).get("/use-cases/").content.decode()
    assert "Needs my vote (1)" in page


def test_register_filters_and_fragment(client_for, use_case, make_use_case, council_member):
    make_use_case(title="Draft thing")
    c = client_for(council_member)
    page = c.get("/use-cases/?state=draft", HTTP_HX_REQUEST="true")
    body = page.content.decode()
    assert "Draft thing" in body and use_case.title not in body and "<html" not in body
    assert "HX-Request" in page["Vary"]


def test_csv_export_neutralises_formulas(client_for, make_use_case, council_member):
    make_use_case(title="=HYPERLINK(\"x\")")
    response = client_for(council_member).get("/use-cases/?format=csv")
    assert response["Content-Type"].startswith("text/csv")
    assert "'=HYPERLINK" in response.content.decode()


def test_intake_page_and_follow_ups_appear_only_when_relevant(client_for, engineer):
    c = client_for(engineer)
    page = c.get("/use-cases/new/").content.decode()
    assert 'data-question="exposure"' in page and 'data-question="vendor_retention"' not in page
    fragment = c.post("/use-cases/questions/", {"a_third_party_model": "true"}, HTTP_HX_REQUEST="true")
    assert 'data-question="vendor_retention"' in fragment.content.decode()
    fragment = c.post("/use-cases/questions/", {"a_third_party_model": "false"}, HTTP_HX_REQUEST="true")
    assert 'data-question="vendor_retention"' not in fragment.content.decode()


def _form(answers, **header):
    data = {"title": "Chat helper", "purpose": "Help agents", "lifecycle_stage": "pilot", **header}
    for key, value in answers.items():
        if isinstance(value, bool):
            data[f"a_{key}"] = "true" if value else "false"
        else:
            data[f"a_{key}"] = value
    return data


def test_intake_submit_creates_and_routes(client_for, engineer, team):
    c = client_for(engineer)
    response = c.post("/use-cases/new/", {**_form(LOW_ANSWERS), "team": team.pk, "submit_now": "1"})
    assert response.status_code == 302
    use_case = UseCase.objects.get(title="Chat helper")
    assert use_case.state == State.IN_REVIEW and use_case.tier == "low"


def test_intake_errors_show_next_to_fields_and_save_nothing(client_for, engineer, team):
    c = client_for(engineer)
    response = c.post("/use-cases/new/", {**_form({"exposure": ["martians"]}, title=""), "team": team.pk})
    assert response.status_code == 422
    body = response.content.decode()
    assert "Give the use case a title." in body
    assert not UseCase.objects.exists()


def test_an_empty_submit_shows_every_error_at_once_next_to_its_question_and_saves_nothing(client_for, engineer,
                                                                                          team):
    from apps.reviews import selectors

    c = client_for(engineer)
    response = c.post("/use-cases/new/", {"title": "", "purpose": "", "team": team.pk, "submit_now": "1"})
    assert response.status_code == 422
    assert not UseCase.objects.exists()  # a failed "Save and submit" leaves no draft behind
    body = response.content.decode()
    assert "Give the use case a title." in body and "Say what the use case is for." in body
    required = [q for q in selectors.questionnaire_current().questions if q.get("required") and not q.get("show_if")]
    for q in required:  # the questions are reported in the same answer as the header, each with its label
        assert f'href="#q-{q["id"]}">{q["label"]}</a>' in body
    assert body.count("This question needs an answer before you submit.") >= 2 * len(required)  # summary + field
    assert "third party model" not in body and "annex iii area" not in body
    assert "Not submitted" in body and "Nothing was saved" in body


def test_an_incomplete_submit_from_the_edit_page_saves_nothing_and_keeps_the_draft(client_for, engineer, team,
                                                                                   make_use_case):
    draft = make_use_case({"exposure": ["internal"]})
    c = client_for(engineer)
    response = c.post(f"/use-cases/{draft.pk}/edit/", {**_form({"exposure": ["customers"]}, title="Renamed"),
                                                       "submit_now": "1"})
    assert response.status_code == 422
    draft.refresh_from_db()
    assert draft.title == "Ticket triage assistant" and draft.answers == {"exposure": ["internal"]}
    assert draft.state == State.DRAFT
    assert 'href="#q-geographies">' in response.content.decode()


def test_submit_button_on_the_page_opens_the_form_with_the_missing_answers(client_for, engineer, make_use_case):
    draft = make_use_case({"exposure": ["internal"]})
    response = client_for(engineer).post(f"/use-cases/{draft.pk}/submit/")
    assert response.status_code == 422
    body = response.content.decode()
    assert f'action="/use-cases/{draft.pk}/edit/"' in body and 'href="#q-geographies">' in body
    draft.refresh_from_db()
    assert draft.state == State.DRAFT


@pytest.mark.parametrize("who", ["viewer", "nobody", "council_member"])
def test_intake_refused_to_people_without_a_team_to_write_for(request, client_for, who):
    assert client_for(person(request, who)).get("/use-cases/new/").status_code == 403


def test_vote_through_the_page(client_for, use_case, council_member, privacy):
    c = client_for(council_member)
    response = c.post(f"/use-cases/{use_case.pk}/vote/", {"decision": "approve", "rationale": "ok"})
    assert response.status_code == 302
    client_for(privacy).post(f"/use-cases/{use_case.pk}/vote/", {"decision": "approve", "rationale": "fine"})
    use_case.refresh_from_db()
    assert use_case.state == State.ACTIVE


def test_bad_vote_is_a_message_not_a_500(client_for, use_case, council_member):
    response = client_for(council_member).post(f"/use-cases/{use_case.pk}/vote/", {"decision": "approve"})
    assert response.status_code == 422 and "Say why you vote this way" in response.content.decode()
    assert not use_case.votes.exists()


def test_an_empty_vote_says_so_next_to_the_decision_in_plain_words(client_for, use_case, council_member):
    response = client_for(council_member).post(f"/use-cases/{use_case.pk}/vote/", {"rationale": "Looks fine"})
    body = response.content.decode()
    assert response.status_code == 422 and not use_case.votes.exists()
    assert "Choose your vote: approve, approve with conditions or reject." in body
    assert "decision: Choose one of" not in body
    field = body.split('id="v-decision"')[1].split("</div>\n    </div>")[0]
    assert "Choose your vote" in field  # next to the decision, not in a banner
    assert "Looks fine</textarea>" in body  # what was typed stays


def test_a_condition_with_the_default_kind_and_nothing_chosen_asks_for_the_missing_fields(client_for, use_case,
                                                                                         security):
    response = client_for(security).post(f"/use-cases/{use_case.pk}/conditions/",
                                         {"title": "Redaction reviewed", "due_date": "2026-01-01", "owner": ""})
    body = response.content.decode()
    assert response.status_code == 422 and not use_case.conditions.exists()
    assert "Name the person who meets the condition." in body and "Unknown check" not in body


def test_an_automatic_condition_without_a_check_asks_for_the_check_next_to_it(client_for, use_case, security):
    response = client_for(security).post(f"/use-cases/{use_case.pk}/conditions/", {
        "title": "Budget capped", "due_date": "2026-01-01", "owner": security.pk, "kind": "automatic"})
    body = response.content.decode()
    assert response.status_code == 422 and not use_case.conditions.exists()
    assert "Unknown check" not in body and "predicate:" not in body
    field = body.split('id="c-pred"')[1].split("</div>")[0]
    assert "Choose the check the portal runs" in field


def test_engineer_cannot_vote_through_the_page(client_for, use_case, engineer):
    response = client_for(engineer).post(f"/use-cases/{use_case.pk}/vote/", {"decision": "approve",
                                                                             "rationale": "mine"}, follow=True)
    assert "Only council members" in response.content.decode()
    assert not use_case.votes.exists()


def test_report_in_three_formats(client_for, use_case, council_member):
    c = client_for(council_member)
    html = c.get(f"/use-cases/{use_case.pk}/report/").content.decode()
    assert "Audit trail" in html and "use_case.submit" in html
    md = c.get(f"/use-cases/{use_case.pk}/report.md").content.decode()
    assert md.startswith("# Risk assessment") and "| E3 | yes |" in md
    data = json.loads(c.get(f"/use-cases/{use_case.pk}/report.json").content)
    assert data["use_case"]["tier"] == "elevated" and data["audit_trail"]


def test_report_hidden_from_outsiders(client_for, use_case, outsider):
    assert client_for(outsider).get(f"/use-cases/{use_case.pk}/report.json").status_code == 404


def test_comment_and_the_vote_request_in_the_shared_inbox(client_for, council_member, use_case, engineer):
    c = client_for(council_member)
    c.post(f"/use-cases/{use_case.pk}/comments/", {"body": "Which PII fields?"})
    assert use_case.comments.get().body == "Which PII fields?"
    inbox = c.get("/inbox/").content.decode()
    assert f"Vote needed: {use_case.title}" in inbox
    assert f'href="/use-cases/{use_case.pk}/"' in inbox
    assert "Which PII fields?" in client_for(engineer).get("/inbox/").content.decode()


def test_the_reviews_inbox_is_gone_and_the_register_links_to_the_shared_one(client_for, council_member, use_case):
    c = client_for(council_member)
    assert c.get("/use-cases/inbox/").status_code == 404
    assert 'href="/inbox/"' in c.get("/use-cases/").content.decode()


def test_link_a_prompt_from_the_page(client_for, use_case, engineer, team):
    from apps.prompts.content import Draft
    from apps.prompts.services import prompt_create

    prompt = prompt_create(team=team, name="support/a", kind="text", actor=engineer,
                           draft=Draft(kind="text", template="hi <t>{{ x }}</t>"), commit_message="1")
    c = client_for(engineer)
    c.post(f"/use-cases/{use_case.pk}/prompts/", {"prompt": prompt.pk})
    assert use_case.prompt_links.filter(prompt=prompt).exists()
    panel = c.get(f"/prompts/{prompt.name}/")
    assert panel.status_code == 200 and use_case.title in panel.content.decode()
    c.post(f"/use-cases/{use_case.pk}/prompts/", {"prompt": "abc"})  # garbage: a message, not a 500
    c.post(f"/use-cases/{use_case.pk}/prompts/", {"unlink": prompt.pk})
    assert not use_case.prompt_links.exists()


def test_use_case_page_queries_are_bounded(client_for, use_case, council_member, django_assert_max_num_queries):
    c = client_for(council_member)
    with django_assert_max_num_queries(45):
        assert c.get(f"/use-cases/{use_case.pk}/").status_code == 200


# --- API ------------------------------------------------------------------------------------------------------


def test_api_questionnaire_is_json_schema(client_for, engineer):
    data = client_for(engineer).get("/api/v1/use-cases/questionnaire").json()
    schema = data["json_schema"]
    assert schema["$schema"].endswith("2020-12/schema") and "prohibited_practices" in schema["properties"]
    assert schema["properties"]["vendor_retention"]["x-show-if"] == {"third_party_model": [True]}


def test_api_create_submit_get_with_a_token(client, token_for, engineer, team):
    _, secret = token_for(engineer, team, scope="write")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    created = client.post("/api/v1/use-cases", {"team": team.slug, "title": "API case", "purpose": "p",
                                                 "answers": ELEVATED_INTERNAL}, content_type="application/json", **auth)
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    submitted = client.post(f"/api/v1/use-cases/{pk}/submit", **auth)
    assert submitted.status_code == 200
    body = client.get(f"/api/v1/use-cases/{pk}", **auth).json()
    assert body["state"] == "in_review" and body["tier"] == "elevated"
    assert {s["id"] for s in body["rule_trace"] if s["matched"]} == {"E3", "L1"}
    assert body["required_seats"] == ["security", "privacy"]
    assert any(c["key"] == "pii_redaction" for c in body["required_controls"])


def test_api_bad_answers_are_422_naming_the_field(client, token_for, engineer, team):
    _, secret = token_for(engineer, team, scope="write")
    response = client.post("/api/v1/use-cases", {"team": team.slug, "title": "x", "purpose": "p",
                                                  "answers": {"exposure": "nope"}},
                           content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "exposure"


def test_api_read_token_cannot_create_and_outsiders_get_404(client, token_for, engineer, outsider, other_team,
                                                           team, make_use_case):
    _, read = token_for(engineer, team, scope="read")
    response = client.post("/api/v1/use-cases", {"team": team.slug, "title": "x", "purpose": "p"},
                           content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {read}")
    assert response.status_code == 422
    use_case = make_use_case()
    _, other = token_for(outsider, other_team, scope="write")
    assert client.get(f"/api/v1/use-cases/{use_case.pk}", HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 404
    assert client.get(f"/api/v1/use-cases/{use_case.pk}").status_code == 401


def test_api_submit_incomplete_is_422(client, token_for, engineer, team, make_use_case):
    use_case = make_use_case({"exposure": ["internal"]})
    _, secret = token_for(engineer, team, scope="write")
    response = client.post(f"/api/v1/use-cases/{use_case.pk}/submit", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 422
    assert selectors.required_seats(use_case) == []


def test_evidence_upload_is_served_only_to_people_who_see_the_use_case(client_for, make_use_case, security,
                                                                        privacy, engineer, outsider, approve):
    from datetime import date

    from django.core.files.uploadedfile import SimpleUploadedFile

    use_case = make_use_case(ELEVATED_INTERNAL, submit=True)
    condition = services.condition_add(use_case=use_case, actor=security, title="Runbook", owner=engineer,
                                       due_date=date.today())
    c = client_for(engineer)
    c.post(f"/use-cases/{use_case.pk}/conditions/{condition.pk}/evidence/",
           {"file": SimpleUploadedFile("runbook.html", b"<script>alert(1)</script>", "text/html"), "note": "v1"})
    condition.refresh_from_db()
    assert condition.status == "evidence_submitted"
    url = f"/use-cases/{use_case.pk}/conditions/{condition.pk}/evidence/file"
    response = client_for(security).get(url)
    assert response.status_code == 200 and response["Content-Disposition"].startswith("attachment")
    assert client_for(outsider).get(url).status_code == 404
    client_for(security).post(f"/use-cases/{use_case.pk}/conditions/{condition.pk}/accept/")
    condition.refresh_from_db()
    assert condition.status == "met"


@pytest.mark.parametrize("data", [{"owner": "abc", "title": "x", "due_date": "2026-01-01"},
                                  {"owner": "", "title": "", "due_date": "nope"},
                                  {"kind": "automatic", "predicate": "budget_cap", "p_budget_cap_max_usd": "x"}])
def test_garbage_condition_forms_are_messages_not_500s(client_for, use_case, security, data):
    response = client_for(security).post(f"/use-cases/{use_case.pk}/conditions/", data)
    assert response.status_code == 422 and 'class="field-error"' in response.content.decode()
    assert not use_case.conditions.exists()


def test_garbage_team_on_intake_is_a_field_error(client_for, engineer):
    response = client_for(engineer).post("/use-cases/new/", {"team": "abc", "title": "t", "purpose": "p"})
    assert response.status_code == 422 and "Choose one of your teams." in response.content.decode()


def test_register_shows_counts_and_its_queries_are_bounded(client_for, make_use_case, council_member,
                                                           django_assert_max_num_queries):
    for i in range(6):
        make_use_case(title=f"case {i}", submit=i % 2 == 0)
    c = client_for(council_member)
    with django_assert_max_num_queries(40):
        page = c.get("/use-cases/").content.decode()
    assert "Draft 3" in page and "In review 3" in page and "Low 3" in page


@pytest.mark.parametrize("suffix", ["vote/", "transition/", "tier/", "conditions/", "comments/", "prompts/",
                                    "collections/", "submit/", "confirm-rejection/"])
def test_every_action_needs_a_login(client, use_case, suffix):
    response = client.post(f"/use-cases/{use_case.pk}/{suffix}", {"name": "withdraw"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    use_case.refresh_from_db()
    assert use_case.state == State.IN_REVIEW


@pytest.mark.parametrize("suffix", ["vote/", "transition/", "tier/", "comments/"])
def test_actions_on_an_unseen_use_case_are_404(client_for, use_case, outsider, suffix):
    assert client_for(outsider).post(f"/use-cases/{use_case.pk}/{suffix}", {"name": "withdraw"}).status_code == 404


def test_openapi_documents_the_use_case_endpoints(client_for, engineer):
    paths = client_for(engineer).get("/api/v1/openapi.json").json()["paths"]
    assert {"/api/v1/use-cases", "/api/v1/use-cases/questionnaire", "/api/v1/use-cases/{use_case_id}",
            "/api/v1/use-cases/{use_case_id}/submit"} <= set(paths)


def test_vote_queue_is_ordered_by_due_date(make_use_case, council_member):
    from datetime import timedelta

    from django.utils import timezone

    from apps.reviews import selectors
    from tests.reviews.conftest import HIGH

    high = make_use_case(HIGH, submit=True, title="high")  # due in 15 days
    low = make_use_case(submit=True, title="low")  # due in 5 days
    assert [u.title for u in selectors.vote_queue(user=council_member)] == ["low", "high"]
    UseCase.objects.filter(pk=high.pk).update(submitted_at=timezone.now() - timedelta(days=30))
    assert [u.title for u in selectors.vote_queue(user=council_member)] == ["high", "low"]
    assert low.pk


def test_inbox_counts_unread_and_marks_read(client_for, council_member, use_case):
    c = client_for(council_member)
    assert "1 new" in c.get("/use-cases/").content.decode()
    c.post("/inbox/read/")
    assert "1 new" not in c.get("/use-cases/").content.decode()


def test_a_comment_notifies_the_team_and_the_voters_but_not_its_author(client_for, use_case, council_member,
                                                                       engineer, privacy):
    from apps.notifications.models import Notification

    services.vote_cast(use_case=use_case, user=privacy, decision="approve", rationale="ok")
    client_for(council_member).post(f"/use-cases/{use_case.pk}/comments/", {"body": "Which PII?"})
    assert Notification.objects.filter(kind="review.comment", user=engineer).exists()
    assert Notification.objects.filter(kind="review.comment", user=privacy).exists()
    assert not Notification.objects.filter(kind="review.comment", user=council_member).exists()


def test_api_register_and_votes(client, client_for, token_for, engineer, team, use_case, council_member, privacy,
                                outsider, other_team):
    _, secret = token_for(engineer, team, scope="read")
    rows = client.get("/api/v1/use-cases?state=in_review", HTTP_AUTHORIZATION=f"Bearer {secret}").json()
    assert [r["id"] for r in rows] == [use_case.pk]
    _, other = token_for(outsider, other_team, scope="read")
    assert client.get("/api/v1/use-cases", HTTP_AUTHORIZATION=f"Bearer {other}").json() == []
    _, write = token_for(engineer, team, scope="write")
    refused = client.post(f"/api/v1/use-cases/{use_case.pk}/votes", {"decision": "approve", "rationale": "x"},
                          content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {write}")
    assert refused.status_code == 403
    c = client_for(council_member)
    c.cookies["csrftoken"] = "a" * 32
    ok = c.post(f"/api/v1/use-cases/{use_case.pk}/votes", {"decision": "approve", "rationale": "fine"},
                content_type="application/json", HTTP_X_CSRFTOKEN="a" * 32)
    assert ok.status_code == 201, ok.content
    assert ok.json() == {"seat": "security", "decision": "approve", "round": 1, "use_case_state": "in_review"}
    bad = client_for(privacy)
    bad.cookies["csrftoken"] = "b" * 32
    response = bad.post(f"/api/v1/use-cases/{use_case.pk}/votes", {"decision": "approve", "rationale": " "},
                        content_type="application/json", HTTP_X_CSRFTOKEN="b" * 32)
    assert response.status_code == 422
