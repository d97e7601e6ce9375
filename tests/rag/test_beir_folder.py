"""Where the BEIR data (SciFact) comes from: `--dir`, else SCIFACT_DIR; neither is a clear stop naming both."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.rag.models import Collection


@pytest.mark.parametrize("command, options", [
    ("rag_import_beir", {"collection": "scifact", "team": "search"}),
    ("rag_eval", {"collection": "scifact"}),
])
def test_without_dir_or_scifact_dir_the_command_says_where_to_get_the_data(command, options, settings):
    settings.SCIFACT_DIR = ""
    with pytest.raises(CommandError) as exc:
        call_command(command, **options)
    message = str(exc.value)
    assert "--dir" in message and "SCIFACT_DIR" in message and "scifact.zip" in message


@pytest.mark.django_db
def test_the_import_reads_scifact_dir_when_no_dir_is_given(tmp_path, settings, team, local_models):
    (tmp_path / "corpus.jsonl").write_text(json.dumps(
        {"_id": "d1", "title": "Aspirin", "text": "Aspirin reduces the risk of heart attacks in adults."}))
    settings.SCIFACT_DIR = str(tmp_path)
    call_command("rag_import_beir", collection="tiny", team=team.slug)
    assert Collection.objects.get(name="tiny").chunk_count == 1
