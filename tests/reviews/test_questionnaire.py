"""The versioned questionnaire: bundled v1, admin-published versions, schema checks, JSON Schema export."""

import copy

import pytest
from django.core.exceptions import ValidationError

from apps.reviews import questionnaire, selectors
from apps.reviews.models import QuestionnaireVersion
from tests.reviews.conftest import LOW_ANSWERS


def test_bundled_v1_is_valid_and_covers_the_required_topics():
    v1 = questionnaire.bundled()
    questionnaire.check_schema(v1.schema)
    ids = {q["id"] for q in v1.questions}
    for field in ("exposure", "geographies", "ai_act_role", "models", "chats_with_people", "generates_media",
                  "annex_iii_area", "decision_influence", "profiling", "prohibited_practices", "human_oversight",
                  "tool_actions", "prompt_data_classes", "rag_data_classes", "third_party_model",
                  "vendor_retention", "regulated_advice", "untrusted_content", "external_publication",
                  "harm_scale", "harm_reversibility", "known_limitations", "planned_evals", "monthly_budget_usd"):
        assert field in ids


def test_low_answers_are_complete():
    assert questionnaire.clean_answers(questionnaire.bundled(), LOW_ANSWERS, complete=True)


def test_an_admin_published_version_becomes_current(db, admin_user):
    schema = copy.deepcopy(questionnaire.bundled().schema)
    schema["version"] = 2
    schema["sections"][0]["questions"].append({"id": "languages", "type": "text", "label": "Languages"})
    row = QuestionnaireVersion(version=2, schema=schema, created_by=admin_user)
    row.full_clean()
    row.save()
    current = selectors.questionnaire_current()
    assert current.version == 2 and current.question("languages")
    assert selectors.questionnaire_by_version(1).question("languages") is None


@pytest.mark.parametrize("broken, message", [
    ({"sections": "x"}, "sections"),
    ({"sections": [{"title": "a", "questions": [{"id": "a", "type": "weird", "label": "A"}]}]}, "type"),
    ({"sections": [{"title": "a", "questions": [{"id": "a", "type": "text", "label": "A"},
                                                  {"id": "a", "type": "text", "label": "B"}]}]}, "twice"),
    ({"sections": [{"title": "a", "questions": [{"id": "a", "type": "text", "label": "A",
                                                  "show_if": {"ghost": [True]}}]}]}, "unknown question"),
    ({"sections": [{"title": "a", "questions": [{"id": "a", "type": "single", "label": "A"}]}]}, "options"),
])
def test_broken_questionnaires_are_refused(broken, message):
    with pytest.raises(ValidationError, match=message):
        questionnaire.check_schema(broken)


def test_json_schema_has_enums_and_follow_up_rules():
    schema = questionnaire.json_schema(questionnaire.bundled())
    props = schema["properties"]
    assert props["exposure"]["type"] == "array" and "minors_vulnerable" in props["exposure"]["items"]["enum"]
    assert props["rag_data_classes"]["x-show-if"] == {"uses_rag": [True]}
    assert props["monthly_budget_usd"]["minimum"] == 0


def test_none_cannot_be_combined_and_numbers_must_be_numbers():
    v1 = questionnaire.bundled()
    with pytest.raises(ValidationError) as exc:
        questionnaire.clean_answers(v1, {"prohibited_practices": ["none", "social_scoring"],
                                         "monthly_budget_usd": "-5", "third_party_model": "perhaps"}, complete=False)
    assert set(exc.value.message_dict) == {"prohibited_practices", "monthly_budget_usd", "third_party_model"}


def test_display_uses_option_labels():
    rows = questionnaire.display(questionnaire.bundled(), {"exposure": ["customers"], "profiling": False})
    values = {r["id"]: r["value"] for s in rows for r in s["rows"]}
    assert values == {"exposure": "Customers", "profiling": "No"}


def test_prompt_filter_by_use_case(make_use_case, team, engineer):
    from apps.prompts.content import Draft
    from apps.prompts.models import Prompt
    from apps.prompts.services import prompt_create
    from apps.reviews import hooks, linking

    a = prompt_create(team=team, name="support/a", kind="text", actor=engineer,
                      draft=Draft(kind="text", template="a <t>{{ x }}</t>"), commit_message="1")
    prompt_create(team=team, name="support/b", kind="text", actor=engineer,
                  draft=Draft(kind="text", template="b <t>{{ x }}</t>"), commit_message="1")
    use_case = make_use_case()
    linking.prompt_link(use_case=use_case, actor=engineer, prompt=a)
    assert list(hooks.filter_apply(Prompt.objects.all(), str(use_case.pk))) == [a]
    assert [p.name for p in hooks.filter_apply(Prompt.objects.all(), "none")] == ["support/b"]
    assert not hooks.filter_apply(Prompt.objects.all(), "x; drop").exists()
    assert (str(use_case.pk), use_case.title) in hooks.filter_choices(user=engineer)
