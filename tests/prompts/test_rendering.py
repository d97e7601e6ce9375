"""Rendering: strict variables, schema checks, sandbox, includes with their graph and cycle detection."""

import pytest
from django.core.exceptions import ValidationError

from apps.prompts.content import Draft
from apps.prompts.models import PromptReference
from apps.prompts.rendering import include_graph, inlined_content, render_version
from apps.prompts.selectors import prompt_used_by, prompt_uses
from apps.prompts.services import label_set, prompt_create, version_create
from apps.prompts.templating import RenderFailed
from tests.prompts.conftest import chat_draft, text_draft


def _problems(version, variables, **kwargs):
    with pytest.raises(RenderFailed) as exc:
        render_version(version, variables, **kwargs)
    return exc.value.problems


def test_a_text_prompt_renders(make_prompt):
    version = make_prompt().versions.get()
    rendered = render_version(version, {"customer": "ACME", "ticket": "Printer on fire"})
    assert rendered.text == "Summarise for ACME:\n<ticket>Printer on fire</ticket>"


def test_missing_and_extra_variables_are_each_named(make_prompt):
    version = make_prompt().versions.get()
    problems = _problems(version, {"ticket": "x", "customr": "typo", "lang": "en"})
    assert [(p.kind, p.variable) for p in problems] == [
        ("missing_variable", "customer"), ("extra_variable", "customr"), ("extra_variable", "lang")]
    assert "missing variable 'customer'" in problems[0].message
    assert "it uses: customer, ticket" in problems[1].message


def test_extra_variables_can_be_allowed(make_prompt):
    version = make_prompt().versions.get()
    rendered = render_version(version, {"customer": "A", "ticket": "B", "lang": "en"}, allow_extra=True)
    assert "A" in rendered.text


def test_a_missing_value_never_renders_as_an_empty_string(make_prompt, add_version):
    prompt = make_prompt()
    version = add_version(prompt, "Dear {{ user.name }}, <ticket>{{ ticket }}</ticket>")
    problems = _problems(version, {"user": {}, "ticket": "x"})
    assert problems[0].kind == "undefined" and problems[0].line == 1
    assert "has no attribute 'name'" in problems[0].message


def test_a_sandbox_violation_at_render_time_names_the_line(make_prompt, add_version):
    prompt = make_prompt()
    version = add_version(prompt, "Hello\n{{ ticket|attr('__class__') }}")
    problems = _problems(version, {"ticket": "x"})
    assert problems[0].kind == "sandbox" and problems[0].line == 2
    assert "line 2" in problems[0].message


def test_a_runtime_error_names_the_line(make_prompt, add_version):
    prompt = make_prompt()
    version = add_version(prompt, "a\nb\n{{ ticket / 0 }}")
    problems = _problems(version, {"ticket": 3})
    assert problems[0].line == 3 and "ZeroDivisionError" in problems[0].message


def test_the_variables_schema_is_enforced_and_optional_variables_may_be_left_out(make_prompt, add_version):
    prompt = make_prompt()
    schema = {"type": "object", "required": ["ticket"],
              "properties": {"ticket": {"type": "string", "maxLength": 10}, "tone": {"enum": ["calm", "brisk"]}}}
    version = add_version(prompt, "{% if tone is defined %}[{{ tone }}] {% endif %}<ticket>{{ ticket }}</ticket>",
                          variables_schema=schema)
    assert render_version(version, {"ticket": "short"}).text == "<ticket>short</ticket>"
    assert render_version(version, {"ticket": "short", "tone": "calm"}).text == "[calm] <ticket>short</ticket>"
    problems = _problems(version, {"ticket": "far too long a ticket", "tone": "angry"})
    assert {p.variable for p in problems} == {"ticket", "tone"}
    assert all(p.kind == "invalid_variable" for p in problems)


def test_a_chat_prompt_renders_each_message(team, engineer):
    prompt = prompt_create(team=team, name="support/chat", kind="chat", actor=engineer, draft=chat_draft())
    rendered = render_version(prompt.versions.get(), {"product": "Portal", "question": "How?"})
    assert rendered.messages == [{"role": "system", "content": "You triage support tickets for Portal."},
                                 {"role": "user", "content": "How?"}]


def test_a_chat_prompt_error_names_the_message(team, engineer):
    draft = chat_draft([{"role": "system", "content": "ok"}, {"role": "user", "content": "x\n{{ q / 0 }}"}])
    prompt = prompt_create(team=team, name="support/chat", kind="chat", actor=engineer, draft=draft)
    problems = _problems(prompt.versions.get(), {"q": 1})
    assert "message 2 (user)" in problems[0].message and problems[0].line == 2


@pytest.fixture
def tone(team, engineer, engineer2):
    from apps.prompts.services import promotion_request_approve, promotion_request_open

    prompt = prompt_create(team=team, name="shared/tone", actor=engineer,
                           draft=text_draft("Answer in a {{ tone }} tone."))
    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer)
    promotion_request_approve(request=request, user=engineer2)
    return prompt


def test_an_include_renders_the_labelled_version_and_is_kept_in_the_graph(tone, make_prompt):
    prompt = make_prompt(template='{% include_prompt "shared/tone" %}\n<ticket>{{ ticket }}</ticket>')
    version = prompt.versions.get()
    ref = PromptReference.objects.get(from_version=version)
    assert (ref.to_prompt, ref.label, ref.version_number) == (tone, "production", None)
    assert render_version(version, {"tone": "calm", "ticket": "t"}).text == \
        "Answer in a calm tone.\n<ticket>t</ticket>"
    problems = _problems(version, {"ticket": "t"})
    assert problems[0].variable == "tone"  # the included prompt's variables are required too
    assert [r.to_prompt.name for r in prompt_uses(prompt=prompt)] == ["shared/tone"]
    used_by = prompt_used_by(prompt=tone, actor=prompt.team.memberships.first().user)
    assert used_by == [{"name": "support/triage-summary", "versions": [1], "selectors": ["production"]}]


def test_an_include_by_version_number(tone, make_prompt, add_version):
    add_version(tone, "Be {{ tone }}.")
    prompt = make_prompt(template='{% include_prompt "shared/tone" version=2 %} {{ ticket }}')
    assert render_version(prompt.versions.get(), {"tone": "kind", "ticket": "t"}).text == "Be kind. t"


def test_an_include_of_a_missing_prompt_is_refused_when_saved(make_prompt, engineer):
    with pytest.raises(ValidationError) as exc:
        make_prompt(template='{% include_prompt "nope/none" %}')
    assert "no prompt with that name" in " ".join(exc.value.message_dict["template"])


def test_an_include_whose_label_is_missing_fails_at_render_time(team, engineer, make_prompt):
    prompt_create(team=team, name="shared/unreleased", actor=engineer, draft=text_draft("Hi"))
    prompt = make_prompt(template='{% include_prompt "shared/unreleased" %}{{ ticket }}')
    problems = _problems(prompt.versions.get(), {"ticket": "t"})
    assert problems[0].kind == "include" and "no 'production' label" in problems[0].message


def test_a_cycle_through_labels_is_refused_when_saved(team, engineer, make_prompt):
    a = prompt_create(team=team, name="shared/a", actor=engineer, draft=text_draft("A"))
    b = prompt_create(team=team, name="shared/b", actor=engineer, draft=text_draft('B {% include_prompt "shared/a" label="staging" %}'))
    label_set(prompt=b, label="staging", version=b.versions.get(), actor=engineer)
    label_set(prompt=a, label="staging", version=a.versions.get(), actor=engineer)
    with pytest.raises(ValidationError) as exc:
        version_create(prompt=a, draft=text_draft('A2 {% include_prompt "shared/b" label="staging" %}'), actor=engineer)
    assert "include cycle: shared/a v2 → shared/b v1 → shared/a v1" in " ".join(exc.value.message_dict["template"])


def test_a_cycle_created_later_by_a_label_move_is_caught_at_render_time(team, engineer):
    a = prompt_create(team=team, name="shared/a", actor=engineer, draft=text_draft("A"))
    b = prompt_create(team=team, name="shared/b", actor=engineer, draft=text_draft('B {% include_prompt "shared/a" label="staging" %}'))
    a2 = version_create(prompt=a, draft=text_draft('A {% include_prompt "shared/b" label="staging" %}'), actor=engineer).version
    label_set(prompt=b, label="staging", version=b.versions.get(), actor=engineer)
    label_set(prompt=a, label="staging", version=a2, actor=engineer)  # now a → b → a
    problems = _problems(a2, {})
    assert problems[0].kind == "include" and "cycle" in problems[0].message
    graph = include_graph(a2)
    assert graph.problems


def test_chat_prompts_cannot_be_included(team, engineer, make_prompt):
    prompt_create(team=team, name="shared/chatty", kind="chat", actor=engineer, draft=chat_draft())
    with pytest.raises(ValidationError, match="only text prompts"):
        make_prompt(template='{% include_prompt "shared/chatty" %}')


def test_the_inlined_template_is_ready_to_render_anywhere(tone, make_prompt):
    prompt = make_prompt(template='Intro\n{%- include_prompt "shared/tone" -%}\n\nBody {{ ticket }}')
    version = prompt.versions.get()
    inlined = inlined_content(version, include_graph(version))
    assert inlined == {"template": "IntroAnswer in a {{ tone }} tone.Body {{ ticket }}"}


def test_a_bad_include_syntax_is_explained(make_prompt):
    with pytest.raises(ValidationError) as exc:
        make_prompt(template='{% include_prompt name %}')
    assert "quoted string" in " ".join(exc.value.message_dict["template"])
    with pytest.raises(ValidationError) as exc:
        make_prompt(template='{% include_prompt "shared/tone" labels="x" %}')
    assert "label=" in " ".join(exc.value.message_dict["template"])


def test_a_version_saved_through_the_draft_api_reports_the_variables(make_prompt, engineer):
    prompt = make_prompt()
    result = version_create(prompt=prompt, draft=Draft(kind="text", template="{{ a }} {{ b.c }} {% for x in xs %}{{ x }}{% endfor %}"),
                            actor=engineer)
    assert result.version.variables == ["a", "b", "xs"]


def test_jinja_include_and_extends_point_to_include_prompt(make_prompt):
    with pytest.raises(ValidationError) as exc:
        make_prompt(template='{% include "other.txt" %}\n{% extends "base" %}')
    text = " ".join(exc.value.message_dict["template"])
    assert "line 1: {% include %} is not available" in text and "include_prompt" in text


@pytest.mark.parametrize("template", ["{{ ticket * 100000000 }}", "{{ 10 ** 100000 }}",
                                      "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"])
def test_templates_cannot_exhaust_memory_or_cpu(make_prompt, add_version, template):
    version = add_version(make_prompt(), template)
    problems = _problems(version, {"ticket": "xx"} if "ticket" in template else {})
    assert problems[0].kind == "sandbox" and problems[0].line == 1
