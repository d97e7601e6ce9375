"""Prompts and their immutable versions: creation, identical content, the database refusing updates."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, InternalError, ProgrammingError, connection, transaction

from apps.audit.models import AuditEvent
from apps.prompts.content import Draft
from apps.prompts.models import Label, LabelEvent, Prompt, PromptVersion
from apps.prompts.services import prompt_create, prompt_update, version_create
from tests.prompts.conftest import chat_draft, text_draft


def test_a_prompt_is_created_with_its_first_version_and_latest_label(make_prompt, engineer):
    before = AuditEvent.objects.count()
    prompt = make_prompt()
    version = prompt.versions.get()
    assert version.number == 1
    assert version.variables == ["customer", "ticket"]
    assert version.author == engineer and version.author_label == engineer.username
    assert len(version.content_hash) == 64
    assert Label.objects.get(prompt=prompt, name="latest").version == version
    assert prompt.latest_version_number == 1
    events = AuditEvent.objects.order_by("id")[before:]
    assert [e.action for e in events] == ["prompt.create"]
    assert events[0].changes["version"] == 1


@pytest.mark.parametrize("name", ["Support/Triage", "support//x", "/support", "support/", "-x", "a/-/b",
                                  "support/resolve", "x/versions/y", "a b", "a/" * 7 + "b"])
def test_bad_names_are_refused_with_a_message(team, engineer, name):
    with pytest.raises(ValidationError) as exc:
        prompt_create(team=team, name=name, actor=engineer)
    assert "name" in exc.value.message_dict


def test_a_duplicate_name_is_refused(make_prompt, team, engineer):
    make_prompt()
    with pytest.raises(ValidationError) as exc:
        prompt_create(team=team, name="support/triage-summary", actor=engineer)
    assert "already exists" in exc.value.message_dict["name"][0]


def test_saving_identical_content_makes_no_new_version_and_says_so(make_prompt, engineer):
    prompt = make_prompt()
    events = AuditEvent.objects.count()
    result = version_create(prompt=prompt, draft=text_draft(), commit_message="again", actor=engineer)
    assert not result.created
    assert result.version.number == 1
    assert "identical to version 1" in result.message
    assert prompt.versions.count() == 1
    assert AuditEvent.objects.count() == events


def test_a_changed_config_is_a_new_version(make_prompt, engineer):
    prompt = make_prompt()
    result = version_create(prompt=prompt, draft=text_draft(config={"temperature": 0.2}), actor=engineer)
    assert result.created and result.version.number == 2
    assert result.version.config == {"temperature": 0.2}
    assert Label.objects.get(prompt=prompt, name="latest").version == result.version
    history = LabelEvent.objects.filter(prompt=prompt, label="latest").order_by("id")
    assert [(e.from_version and e.from_version.number, e.to_version.number) for e in history] == [(None, 1), (1, 2)]


def test_a_version_refuses_to_be_saved_again(make_prompt):
    version = make_prompt().versions.get()
    version.template = "changed"
    with pytest.raises(ValidationError, match="immutable"):
        version.save()


def test_the_database_refuses_an_update_of_a_version(make_prompt):
    version = make_prompt().versions.get()
    with pytest.raises((InternalError, ProgrammingError, IntegrityError)) as exc, transaction.atomic(), \
            connection.cursor() as cursor:
        cursor.execute("UPDATE prompts_promptversion SET template = 'x' WHERE id = %s", [version.pk])
    assert "immutable" in str(exc.value)
    with pytest.raises(Exception, match="immutable"), transaction.atomic():
        PromptVersion.objects.filter(pk=version.pk).update(commit_message="rewritten")
    version.refresh_from_db()
    assert version.commit_message == "first"


def test_the_database_refuses_an_update_of_label_history(make_prompt):
    prompt = make_prompt()
    with pytest.raises(Exception, match="immutable"), transaction.atomic():
        LabelEvent.objects.filter(prompt=prompt).update(reason="rewritten")


def test_a_syntax_error_is_refused_naming_the_line(make_prompt, engineer):
    prompt = make_prompt()
    with pytest.raises(ValidationError) as exc:
        version_create(prompt=prompt, draft=text_draft("Hello\n{{ name }\nbye"), actor=engineer)
    message = exc.value.message_dict["template"][0]
    assert "line 2" in message and "syntax error" in message


def test_a_sandbox_escape_is_refused_when_saved(make_prompt, engineer):
    prompt = make_prompt()
    with pytest.raises(ValidationError) as exc:
        version_create(prompt=prompt, draft=text_draft("{{ ''.__class__.__mro__ }}"), actor=engineer)
    assert "'__mro__'" in " ".join(exc.value.message_dict["template"]) or "__class__" in str(exc.value)


def test_a_bad_config_names_each_key(make_prompt, engineer):
    prompt = make_prompt()
    with pytest.raises(ValidationError) as exc:
        version_create(prompt=prompt, draft=text_draft(config={"temperature": 3, "colour": "red", "max_tokens": 0}),
                       actor=engineer)
    messages = " ".join(exc.value.message_dict["config"])
    assert "config.temperature" in messages and "config.colour" in messages and "config.max_tokens" in messages


def test_the_response_cache_opt_in_is_kept_and_a_bad_one_is_named(make_prompt, engineer):
    prompt = make_prompt()
    kept = version_create(prompt=prompt, draft=text_draft(config={"cache": {"ttl_seconds": 600, "sampled": False}}),
                          actor=engineer).version
    assert kept.config == {"cache": {"ttl_seconds": 600}}
    with pytest.raises(ValidationError) as exc:
        version_create(prompt=prompt, draft=text_draft(config={"cache": {"ttl_seconds": 0}}), actor=engineer)
    assert "config.cache" in " ".join(exc.value.message_dict["config"])


def test_a_bad_variables_schema_is_refused(make_prompt, engineer):
    prompt = make_prompt()
    with pytest.raises(ValidationError) as exc:
        version_create(prompt=prompt, draft=text_draft(variables_schema={"type": "object",
                                                                         "properties": {"x": {"type": "nope"}}}),
                       actor=engineer)
    assert "variables_schema" in exc.value.message_dict


def test_response_format_and_tools_are_kept_in_canonical_form(make_prompt, engineer):
    prompt = make_prompt()
    config = {"model": "local-extractive", "response_format": "json_object",
              "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]}
    version = version_create(prompt=prompt, draft=text_draft(config=config), actor=engineer).version
    assert version.config["response_format"] == {"type": "json_object"}
    assert version.config["tools"][0]["function"]["name"] == "lookup"


def test_a_chat_prompt_keeps_messages_and_checks_each(team, engineer):
    prompt = prompt_create(team=team, name="support/chat", kind="chat", actor=engineer, draft=chat_draft())
    version = prompt.versions.get()
    assert version.variables == ["product", "question"]
    assert version.messages[1] == {"role": "user", "content": "{{ question }}"}
    with pytest.raises(ValidationError) as exc:
        version_create(prompt=prompt, draft=Draft(kind="chat", messages=[{"role": "boss", "content": ""}]),
                       actor=engineer)
    text = " ".join(exc.value.message_dict["messages"])
    assert "Message 1" in text and "role must be one of" in text


def test_tags_and_description_updates_are_audited(make_prompt, engineer):
    prompt = make_prompt(tags=["Support", "triage"])
    assert prompt.tags == ["support", "triage"]
    prompt_update(prompt=prompt, description="Summaries for agents", tags="support, summary", actor=engineer)
    prompt.refresh_from_db()
    assert prompt.tags == ["support", "summary"]
    event = AuditEvent.objects.filter(action="prompt.update").get()
    assert event.changes["description"] == ["", "Summaries for agents"]


def test_search_vector_covers_name_description_and_template(make_prompt):
    from apps.prompts.selectors import prompt_list, CatalogFilters  # noqa: I001
    from apps.accounts.models import Team

    make_prompt("support/triage-summary", description="Short ticket summaries")
    make_prompt("search/rerank", template="Rank the passages by relevance to {{ query }}")
    admin = type("A", (), {})  # noqa: F841
    team = Team.objects.get(slug="support-ai")
    user = team.memberships.first().user
    names = lambda q: [p.name for p in prompt_list(actor=user, filters=CatalogFilters(q=q))]  # noqa: E731
    assert names("triage") == ["support/triage-summary"]
    assert names("summar") == ["support/triage-summary"]  # prefix while typing, and stemmed words
    assert names("passages relevance") == ["search/rerank"]
    assert names("tick") == ["support/triage-summary"]
    assert names("nothing-like-this") == []
    assert Prompt.objects.count() == 2
