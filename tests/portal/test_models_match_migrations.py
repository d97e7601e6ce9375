"""The models and the migrations on disk describe the same schema: a model change without its migration
(or a refactor such as ADR 0094's abstract `JobRow` that should change nothing) fails here, not in deploy."""

import pytest
from django.core.management import call_command


@pytest.mark.django_db  # makemigrations checks the applied history against the database
def test_makemigrations_finds_nothing_to_write(capsys):
    call_command("makemigrations", "--check", "--dry-run")
    assert "No changes detected" in capsys.readouterr().out
