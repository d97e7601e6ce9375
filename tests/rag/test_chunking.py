"""Chunkers: tables and code kept whole, heading paths kept, spans exact, windows overlap."""

import pytest
from django.core.exceptions import ValidationError

from apps.rag.chunking import blocks_of, chunk_text
from apps.rag.config import ChunkingConfig

HANDBOOK = """# Handbook

Welcome to the company. This handbook explains how we work.

## Leave

Employees get 25 days of paid leave per year. Unused days carry over until March.

### Parental leave

Parents get 16 weeks of paid leave. Ask HR two months ahead.

| Country | Weeks | Paid by |
|---|---|---|
| France | 16 | State |
| Germany | 14 | State and employer |
| Spain | 16 | State |

## Expenses

```python
def file_expense(amount):
    return submit(amount)
```

File expenses within 30 days.
"""


def _spans_exact(text, chunks):
    for chunk in chunks:
        assert text[chunk.char_start:chunk.char_end] == chunk.text


def test_blocks_find_headings_tables_and_code():
    kinds = [b.kind for b in blocks_of(HANDBOOK)]
    assert kinds == ["heading", "paragraph", "heading", "paragraph", "heading", "paragraph", "table", "heading",
                     "code", "paragraph"]


def test_recursive_chunks_carry_their_heading_path():
    chunks = chunk_text(HANDBOOK, ChunkingConfig(strategy="recursive", chunk_tokens=200))
    paths = [c.heading_path for c in chunks]
    assert paths == ["Handbook", "Handbook › Leave", "Handbook › Leave › Parental leave", "Handbook › Expenses"]
    assert [c.position for c in chunks] == [0, 1, 2, 3]
    _spans_exact(HANDBOOK, chunks)


def test_recursive_keeps_a_table_whole_even_when_it_is_larger_than_a_chunk():
    rows = "\n".join(f"| row {i} | value {i} | a longer description of item {i} |" for i in range(60))
    text = f"# Prices\n\nIntro sentence.\n\n| name | value | description |\n|---|---|---|\n{rows}\n\nAfter the table."
    chunks = chunk_text(text, ChunkingConfig(strategy="recursive", chunk_tokens=40))
    tables = [c for c in chunks if "| name | value |" in c.text]
    assert len(tables) == 1
    assert "| row 59 | value 59 |" in tables[0].text
    assert tables[0].token_count > 40
    assert sum("| row 0 |" in c.text for c in chunks) == 1
    _spans_exact(text, chunks)


def test_fixed_windows_overlap_and_never_cut_a_table():
    words = " ".join(f"word{i}" for i in range(300))
    table = "| a | b |\n|---|---|\n" + "\n".join(f"| {i} | {i * 2} |" for i in range(30))
    text = f"# Title\n\n{words}\n\n{table}\n\n{words}"
    chunks = chunk_text(text, ChunkingConfig(strategy="fixed", chunk_tokens=60, overlap_tokens=10))
    assert len(chunks) > 5
    with_table = [c for c in chunks if "| 0 | 0 |" in c.text]
    assert all("| 29 | 58 |" in c.text for c in with_table)
    # consecutive windows share their edge words
    first, second = chunks[0].text.split(), chunks[1].text.split()
    assert first[-1] in second[:15]
    assert all(c.heading_path == "Title" for c in chunks)
    _spans_exact(text, chunks)


def test_recursive_splits_a_long_paragraph_at_sentences():
    paragraph = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(80))
    chunks = chunk_text(paragraph, ChunkingConfig(strategy="recursive", chunk_tokens=50))
    assert len(chunks) > 3
    assert all(c.text.endswith(".") for c in chunks)
    assert all(c.token_count <= 50 for c in chunks)
    _spans_exact(paragraph, chunks)


def test_whole_document_is_one_chunk():
    chunks = chunk_text(HANDBOOK, ChunkingConfig(strategy="whole"))
    assert len(chunks) == 1
    assert chunks[0].text == HANDBOOK.strip()


def test_html_table_survives_parsing_and_chunking_whole():
    from apps.rag.parsing import parse

    html = b"""<html><head><title>Plans</title><script>var x = 1;</script></head><body>
      <h1>Plans</h1><p>Our plans compared.</p>
      <table><tr><th>Plan</th><th>Price</th></tr><tr><td>Basic</td><td>10</td></tr>
      <tr><td>Pro</td><td>30</td></tr></table><h2>Support</h2><p>Email us.</p></body></html>"""
    parsed = parse(html, "html")
    assert parsed.title == "Plans"
    assert "var x" not in parsed.text
    assert "| Plan | Price |\n|---|---|\n| Basic | 10 |\n| Pro | 30 |" in parsed.text
    chunks = chunk_text(parsed.text, ChunkingConfig(strategy="recursive", chunk_tokens=20))
    table_chunks = [c for c in chunks if "| Basic | 10 |" in c.text]
    assert len(table_chunks) == 1 and "| Pro | 30 |" in table_chunks[0].text
    assert chunks[-1].heading_path == "Plans › Support"


@pytest.mark.parametrize("data, field", [
    ({"strategy": "sentences"}, "strategy"),
    ({"chunk_tokens": 5}, "chunk_tokens"),
    ({"chunk_tokens": 100, "overlap_tokens": 90}, "overlap_tokens"),
])
def test_chunking_config_names_the_bad_field(data, field):
    with pytest.raises(ValidationError) as info:
        ChunkingConfig.from_dict(data)
    assert field in info.value.message_dict
