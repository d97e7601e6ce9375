"""Template rules a person would see broken: a table without the house style reads as a run of bold words."""

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
TABLE_TAG = re.compile(r"<table\b[^>]*>")


def test_every_table_carries_the_house_table_style():
    unstyled = [f"{path.relative_to(TEMPLATES)}: {tag}" for path in TEMPLATES.rglob("*.html")
                for tag in TABLE_TAG.findall(path.read_text())
                if not re.search(r'class="[^"]*\b(table|diff-table)\b', tag)]
    assert unstyled == []
