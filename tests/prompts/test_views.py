"""The pages: catalog (search, filters, htmx fragment, query count), prompt, version, diff, promotion, settings."""

import pytest
from django.urls import reverse

from apps.prompts.models import Label, PromotionRequest, Prompt
from apps.prompts.services import label_set, promotion_request_open
from tests.prompts.conftest import text_draft


@pytest.fixture
def prompt(make_prompt):
    return make_prompt(description="Short summaries of support tickets", tags=["support", "summary"])


def test_the_catalog_lists_prompts_with_production_version_last_change_and_team(prompt, client_for, engineer,
                                                                                 engineer2):
    from apps.prompts.services import promotion_request_approve

    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer)
    promotion_request_approve(request=request, user=engineer2)
    response = client_for(engineer).get(reverse("prompts:list"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "support/triage-summary" in html and "Support AI" in html
    assert 'class="badge ok">v1<' in html
    assert "ellen-engineer" in html  # the last change, by whom


def test_htmx_typing_gets_the_results_fragment_only(prompt, make_prompt, client_for, engineer):
    make_prompt("search/rerank", template="Rank passages for {{ query }}")
    response = client_for(engineer).get(reverse("prompts:list"), {"q": "rera"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert "search/rerank" in html and "support/triage-summary" not in html
    assert response["Vary"].count("HX-Request") == 1


@pytest.mark.parametrize("params,expected", [
    ({"tag": "summary"}, ["support/triage-summary"]),
    ({"label": "staging"}, ["search/rerank"]),
    ({"kind": "chat"}, []),
    ({"team": "search"}, []),
    ({"sort": "name"}, ["search/rerank", "support/triage-summary"]),
    ({"sort": "-name"}, ["support/triage-summary", "search/rerank"]),
])
def test_catalog_filters_and_sorting(prompt, make_prompt, client_for, engineer, params, expected):
    other = make_prompt("search/rerank", template="Rank passages for {{ query }}")
    label_set(prompt=other, label="staging", version=other.versions.get(), actor=engineer)
    response = client_for(engineer).get(reverse("prompts:list"), params)
    names = [p.name for p in response.context["page"].object_list]
    assert names == expected


def test_catalog_query_count_does_not_grow_with_the_page_size(team, engineer, client_for,
                                                             django_assert_max_num_queries):
    for i in range(30):
        Prompt.objects.create(team=team, name=f"bulk/p{i:02d}", latest_version_number=1)
    client = client_for(engineer)
    client.get(reverse("prompts:list"))
    with django_assert_max_num_queries(12) as small:
        client.get(reverse("prompts:list"), {"per_page": 25})
    with django_assert_max_num_queries(12) as large:
        response = client.get(reverse("prompts:list"), {"per_page": 100})
    assert len(response.context["page"].object_list) == 30
    assert len(large.captured_queries) == len(small.captured_queries)


def test_the_catalog_shows_only_prompts_of_teams_you_may_see(prompt, make_prompt, other_team, outsider, client_for):
    make_prompt("search/rerank", team_=other_team, actor=outsider, template="Rank {{ query }}")
    names = [p.name for p in client_for(outsider).get(reverse("prompts:list")).context["page"].object_list]
    assert names == ["search/rerank"]


def test_a_prompt_page_shows_labels_versions_history_and_references(prompt, client_for, engineer, add_version):
    add_version(prompt, "Two {{ ticket }}", message="shorter")
    label_set(prompt=prompt, label="staging", version=prompt.versions.get(number=2), actor=engineer, reason="QA")
    response = client_for(engineer).get(reverse("prompts:detail", args=[prompt.name]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "shorter" in html and "QA" in html and 'data-label="staging"' in html
    assert "No prompt includes this one." in html


def test_what_was_production_at_a_time_is_answered_on_the_page(prompt, client_for, engineer):
    response = client_for(engineer).get(reverse("prompts:detail", args=[prompt.name]),
                                        {"label": "production", "at": "2000-01-01T10:00"})
    assert "did not exist yet" in response.content.decode()


def test_create_a_prompt_in_the_browser(team, engineer, client_for):
    client = client_for(engineer)
    assert client.get(reverse("prompts:create")).status_code == 200
    response = client.post(reverse("prompts:create"), {
        "team": team.pk, "name": "support/greeting", "kind": "text", "description": "Hello", "tags": "a, b",
        "v-template": "Hello {{ name }}", "v-commit_message": "first", "v-response_format": "text",
        "m-TOTAL_FORMS": "0", "m-INITIAL_FORMS": "0",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Prompt.objects.get(name="support/greeting").versions.get().template == "Hello {{ name }}"


def test_create_shows_each_error_next_to_its_field(team, engineer, client_for):
    response = client_for(engineer).post(reverse("prompts:create"), {
        "team": team.pk, "name": "Bad Name", "kind": "text", "v-template": "Hi {{ x }",
        "v-temperature": "5", "v-variables_schema": "{not json", "v-response_format": "text",
        "m-TOTAL_FORMS": "0", "m-INITIAL_FORMS": "0",
    })
    assert response.status_code == 400
    form, version_form = response.context["form"], response.context["version_form"]
    assert "name" in form.errors
    assert "temperature" in version_form.errors and "variables_schema" in version_form.errors


def test_a_chat_prompt_is_created_from_message_rows(team, engineer, client_for):
    response = client_for(engineer).post(reverse("prompts:create"), {
        "team": team.pk, "name": "support/chat", "kind": "chat", "v-response_format": "text",
        "m-TOTAL_FORMS": "3", "m-INITIAL_FORMS": "0",
        "m-0-role": "system", "m-0-content": "You help with {{ product }}.",
        "m-1-role": "user", "m-1-content": "{{ question }}", "m-2-role": "user", "m-2-content": "",
    })
    assert response.status_code == 302
    assert Prompt.objects.get(name="support/chat").versions.get().messages == [
        {"role": "system", "content": "You help with {{ product }}."}, {"role": "user", "content": "{{ question }}"}]


def test_add_a_version_and_identical_content_says_so(prompt, client_for, engineer):
    client = client_for(engineer)
    url = reverse("prompts:version_create", args=[prompt.name])
    form = client.get(url).context["form"]
    assert form.initial["template"] == prompt.versions.get().template  # starts from the latest
    data = {"v-template": "New {{ ticket }}", "v-commit_message": "two", "v-response_format": "text",
            "m-TOTAL_FORMS": "0", "m-INITIAL_FORMS": "0"}
    response = client.post(url, data, follow=True)
    assert "Saved version 2." in response.content.decode()
    response = client.post(url, data, follow=True)
    assert "identical to version 2" in response.content.decode()


def test_a_syntax_error_is_shown_next_to_the_template(prompt, client_for, engineer):
    response = client_for(engineer).post(reverse("prompts:version_create", args=[prompt.name]), {
        "v-template": "ok\n{% for x in %}", "v-response_format": "text", "m-TOTAL_FORMS": "0", "m-INITIAL_FORMS": "0"})
    assert response.status_code == 400
    assert "line 2" in " ".join(response.context["form"].errors["template"])


def test_the_version_page_shows_lint_and_renders_a_preview(prompt, client_for, engineer, add_version):
    add_version(prompt, "Answer: {{ question }}")
    client = client_for(engineer)
    page = client.get(reverse("prompts:version", args=[prompt.name, 2]))
    assert "undelimited-user-input" in page.content.decode()
    preview = client.post(reverse("prompts:version_render", args=[prompt.name, 2]), {"var_question": "Why?"},
                          HTTP_HX_REQUEST="true")
    assert '<pre class="template rendered">Answer: Why?</pre>' in preview.content.decode()
    missing = client.post(reverse("prompts:version_render", args=[prompt.name, 2]), {}, HTTP_HX_REQUEST="true")
    assert "missing variable &#x27;question&#x27;" in missing.content.decode()


def test_the_diff_page_marks_changed_lines_and_config(prompt, client_for, engineer, add_version):
    add_version(prompt, "Summarise for {{ customer }}!\n<ticket>{{ ticket }}</ticket>", config={"temperature": 0.3})
    response = client_for(engineer).get(reverse("prompts:diff", args=[prompt.name]), {"a": 1, "b": 2})
    html = response.content.decode()
    assert 'class="diff-replace"' in html and "<mark>!</mark>" in html
    assert "config.temperature" in html


def test_request_promotion_and_approve_in_the_browser(prompt, client_for, engineer, engineer2):
    response = client_for(engineer).post(reverse("prompts:promote", args=[prompt.name]),
                                         {"version": 1, "label": "production", "reason": "first release"})
    request = PromotionRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("prompts:request", args=[request.pk])
    page = client_for(engineer).get(response["Location"]).content.decode()
    assert 'data-check="approvals"' in page and "You wrote this version" in page
    approver = client_for(engineer2)
    assert "Approve" in approver.get(response["Location"]).content.decode()
    done = approver.post(reverse("prompts:request_approve", args=[request.pk]), {"comment": "ok"}, follow=True)
    assert "production now points at version 1" in done.content.decode()
    assert Label.objects.get(prompt=prompt, name="production").version.number == 1


def test_an_htmx_approval_answers_with_hx_location(prompt, client_for, engineer, engineer2):
    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer)
    response = client_for(engineer2).post(reverse("prompts:request_approve", args=[request.pk]),
                                          HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert response["HX-Location"] == reverse("prompts:request", args=[request.pk])


def test_setting_production_from_the_label_form_is_refused_with_a_hint(prompt, client_for, engineer):
    response = client_for(engineer).post(reverse("prompts:label_set", args=[prompt.name]),
                                         {"label": "production", "version": 1}, follow=True)
    assert "Request promotion" in response.content.decode()
    assert not Label.objects.filter(prompt=prompt, name="production").exists()


def test_team_settings_policy_and_webhook_with_secret_shown_once(team, owner, client_for):
    client = client_for(owner)
    assert client.get(reverse("prompts:team_settings", args=[team.slug])).status_code == 200
    response = client.post(reverse("prompts:policy_update", args=[team.slug]),
                           {"approvals_required": 2, "protected_labels": "staging", "advisory_checks": ["eval_gate"]})
    assert response.status_code == 302
    from apps.prompts.models import PromptPolicy

    policy = PromptPolicy.objects.get(team=team)
    assert (policy.approvals_required, policy.protected_labels) == (2, ["staging"])
    assert policy.check_overrides == {"eval_gate": False}
    created = client.post(reverse("prompts:webhook_create", args=[team.slug]),
                          {"url": "https://ci.example.com/hook", "events": ["label.moved"]})
    assert "whsec_" in created.content.decode()
    again = client.get(reverse("prompts:team_settings", args=[team.slug]))
    assert "whsec_" not in again.content.decode()


def test_export_then_import_round_trips(prompt, client_for, engineer, team):
    client = client_for(engineer)
    exported = client.get(reverse("prompts:team_export", args=[team.slug]))
    assert exported.status_code == 200 and b"support/triage-summary" in exported.content
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("p.yaml", exported.content, content_type="application/yaml")
    response = client.post(reverse("prompts:team_import", args=[team.slug]), {"file": upload})
    assert response.status_code == 200
    report = response.context["import_report"]
    assert report.created_versions == [] and report.unchanged == ["support/triage-summary v1"]


def test_a_version_with_includes_shows_what_it_resolves_to(team, engineer, client_for, make_prompt):
    from apps.prompts.services import prompt_create

    tone = prompt_create(team=team, name="shared/tone", actor=engineer, draft=text_draft("Be calm."))
    label_set(prompt=tone, label="staging", version=tone.versions.get(), actor=engineer)
    prompt = make_prompt(template='{% include_prompt "shared/tone" label="staging" %} {{ ticket }}')
    html = client_for(engineer).get(reverse("prompts:version", args=[prompt.name, 1])).content.decode()
    assert "shared/tone" in html and "→ v1" in html
    used_by = client_for(engineer).get(reverse("prompts:detail", args=["shared/tone"])).content.decode()
    assert "support/triage-summary" in used_by


def test_a_rollback_is_offered_on_older_versions_and_opens_a_rollback_request(prompt, client_for, engineer,
                                                                             engineer2, add_version):
    from apps.prompts.services import promotion_request_approve

    v2 = add_version(prompt, "Two {{ ticket }}")
    request = promotion_request_open(prompt=prompt, version=v2, actor=engineer)
    promotion_request_approve(request=request, user=engineer2)
    client = client_for(engineer)
    page = client.get(reverse("prompts:detail", args=[prompt.name])).content.decode()
    assert "roll back to this" in page
    form = client.get(reverse("prompts:promote", args=[prompt.name]), {"version": 1})
    assert "Roll back" in form.content.decode()
    client.post(reverse("prompts:promote", args=[prompt.name]), {"version": 1, "label": "production",
                                                                  "reason": "v2 drops order numbers"})
    assert PromotionRequest.objects.get(status="open").kind == "rollback"
