"""YAML export and import: validated first, every problem named by its place, written in one transaction."""

import pytest
import yaml

from apps.audit.models import AuditEvent
from apps.prompts.models import Label, Prompt
from apps.prompts.services import label_set, prompt_create
from apps.prompts.yaml_io import ImportFailed, export_team, import_team
from tests.prompts.conftest import chat_draft, text_draft


def _doc(*prompts, team="support-ai"):
    return yaml.safe_dump({"format": "genai-portal/prompts@1", "team": team, "prompts": list(prompts)})


def test_export_holds_every_version_and_the_labels(make_prompt, add_version, engineer, team):
    prompt = make_prompt(tags=["support"])
    add_version(prompt, "Two\n{{ ticket }}")
    label_set(prompt=prompt, label="staging", version=prompt.versions.get(number=2), actor=engineer)
    prompt_create(team=team, name="support/chat", kind="chat", actor=engineer, draft=chat_draft())
    doc = yaml.safe_load(export_team(team))
    assert doc["team"] == "support-ai"
    exported = {p["name"]: p for p in doc["prompts"]}
    assert exported["support/triage-summary"]["labels"] == {"staging": 2}
    assert [v["template"] for v in exported["support/triage-summary"]["versions"]][1] == "Two\n{{ ticket }}"
    assert exported["support/chat"]["versions"][0]["messages"][1] == {"role": "user", "content": "{{ question }}"}


def test_an_export_imports_into_an_empty_portal_as_the_same_content(make_prompt, add_version, team, engineer):
    prompt = make_prompt()
    add_version(prompt, "Two {{ ticket }}", config={"temperature": 0.2})
    text = export_team(team).replace("support/triage-summary", "support/copy")
    hashes = list(prompt.versions.order_by("number").values_list("content_hash", flat=True))
    report = import_team(team, text, actor=engineer)
    assert report.created_prompts == ["support/copy"]
    assert report.created_versions == ["support/copy v1", "support/copy v2"]
    copy = Prompt.objects.get(name="support/copy")
    assert list(copy.versions.order_by("number").values_list("content_hash", flat=True)) == hashes


def test_import_is_idempotent(make_prompt, team, engineer):
    make_prompt()
    text = export_team(team)
    report = import_team(team, text, actor=engineer)
    assert report.created_versions == [] and report.unchanged == ["support/triage-summary v1"]


def test_every_bad_entry_is_reported_and_nothing_is_written(team, engineer, make_prompt):
    make_prompt()
    events = AuditEvent.objects.count()
    text = _doc(
        {"name": "support/good", "versions": [{"template": "fine {{ x }}"}]},
        {"name": "Bad Name", "versions": [{"template": "x"}]},
        {"name": "support/broken", "versions": [{"template": "ok"}, {"template": "{% if %}"}]},
        {"name": "support/conf", "versions": [{"template": "x", "config": {"temperature": 9}}]},
        {"name": "support/inc", "versions": [{"template": '{% include_prompt "nope/missing" %}'}]},
        {"name": "support/lbl", "labels": {"staging": 7}, "versions": [{"template": "x"}]},
        {"name": "support/triage-summary", "type": "chat", "versions": [{"messages": [{"role": "user",
                                                                                      "content": "x"}]}]},
    )
    with pytest.raises(ImportFailed) as exc:
        import_team(team, text, actor=engineer)
    where = [e.where for e in exc.value.errors]
    assert where[0] == "prompts[1] Bad Name"
    assert "prompts[2] support/broken: versions[1]" in where
    assert "prompts[3] support/conf: versions[0]" in where
    assert "prompts[4] support/inc" in where
    assert "prompts[5] support/lbl: labels.staging" in where
    assert "prompts[6] support/triage-summary" in where
    messages = " ".join(e.message for e in exc.value.errors)
    assert "line 1" in messages and "config.temperature" in messages and "nope/missing" in messages
    assert not Prompt.objects.filter(name="support/good").exists()
    assert AuditEvent.objects.count() == events


def test_a_file_for_another_team_or_not_yaml_is_refused(team, engineer):
    with pytest.raises(ImportFailed, match="problem") as exc:
        import_team(team, _doc({"name": "x/y", "versions": [{"template": "x"}]}, team="search"), actor=engineer)
    assert "for team 'search'" in exc.value.errors[0].message
    with pytest.raises(ImportFailed) as exc:
        import_team(team, "prompts: [\n  - name: x\n  bad", actor=engineer)
    assert exc.value.errors[0].where.startswith("line ")


def test_a_prompt_of_another_team_cannot_be_overwritten(make_prompt, other_team, outsider):
    make_prompt()
    with pytest.raises(ImportFailed, match="problem") as exc:
        import_team(other_team, _doc({"name": "support/triage-summary", "versions": [{"template": "mine"}]},
                                     team="search"), actor=outsider)
    assert "belongs to another team" in exc.value.errors[0].message


def test_includes_within_the_file_are_created_in_dependency_order(team, engineer):
    text = _doc({"name": "support/uses", "labels": {"staging": 1},
                 "versions": [{"number": 1, "template": '{% include_prompt "shared/tone" label="staging" %} {{ q }}'}]},
                {"name": "shared/tone", "labels": {"staging": 1}, "versions": [{"number": 1, "template": "Calm."}]})
    report = import_team(team, text, actor=engineer)
    assert report.created_prompts == ["shared/tone", "support/uses"]
    assert set(report.labels_moved) == {"shared/tone: staging → v1", "support/uses: staging → v1"}


def test_import_never_moves_production_and_says_so(make_prompt, team, engineer):
    make_prompt()
    text = _doc({"name": "support/triage-summary", "labels": {"production": 2},
                 "versions": [{"number": 1, "template": text_draft().template},
                              {"number": 2, "template": "New {{ ticket }}"}]})
    report = import_team(team, text, actor=engineer)
    assert report.created_versions == ["support/triage-summary v2"]
    assert not Label.objects.filter(name="production").exists()
    assert "Open a promotion request" in report.notes[0]


def test_a_dry_run_reports_and_changes_nothing(team, engineer):
    report = import_team(team, _doc({"name": "support/new", "versions": [{"template": "x"}]}), actor=engineer,
                         dry_run=True)
    assert report.dry_run and report.created_prompts == ["support/new"]
    assert not Prompt.objects.exists()


def test_the_api_reports_each_problem_in_a_422(team, engineer, token_for):
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token_for(engineer, team, 'write')[1]}")
    response = client.post("/api/v1/prompts/-/import?team=support-ai",
                           _doc({"name": "ok/one", "versions": [{"template": "{{ a }"}]}),
                           content_type="application/yaml")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "prompts[0] ok/one: versions[0]"
