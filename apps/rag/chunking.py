"""Chunkers: Markdown-like text (parsing.py) -> chunks with their heading path and character span.

Three strategies (ChunkingConfig.strategy):
- `recursive`: split at headings (each chunk knows its heading path), pack a section's paragraphs up to
  `chunk_tokens`, split an oversized paragraph at sentences, an oversized sentence into word windows;
- `fixed`: windows of `chunk_tokens` with `overlap_tokens` of overlap, heading path of where each starts;
- `whole`: the document is one chunk.

In every strategy a table (consecutive `|` lines) and a fenced code block is one unit that is never cut,
even when it is larger than `chunk_tokens`. A chunk's text is always `text[char_start:char_end]`, so a
citation can open the document at exactly that place. Tokens are the portal's cl100k estimate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from apps.llm.tokens import estimate_tokens
from apps.rag.config import ChunkingConfig

HEADING_SEPARATOR = " › "
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^[ \t]*(```|~~~)")
_TABLE_LINE = re.compile(r"^[ \t]*\|")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9\"'(\[])")
_WORD = re.compile(r"\S+")


@dataclass
class Block:
    kind: str  # heading, paragraph, table, code
    start: int
    end: int
    level: int = 0
    title: str = ""


@dataclass
class ChunkSpec:
    text: str
    char_start: int
    char_end: int
    position: int = 0
    heading_path: str = ""
    token_count: int = 0
    metadata: dict = field(default_factory=dict)


def _tokens(text: str) -> int:
    return estimate_tokens(text)


def blocks_of(text: str) -> list[Block]:
    """The text's headings, paragraphs, tables and fenced code blocks, with their character spans."""
    blocks: list[Block] = []
    lines = text.split("\n")
    offsets = []
    pos = 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        start = offsets[i]
        if not line.strip():
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence:
            marker = fence.group(1)
            j = i + 1
            while j < n and not lines[j].lstrip().startswith(marker):
                j += 1
            j = min(j, n - 1)
            blocks.append(Block("code", start, offsets[j] + len(lines[j])))
            i = j + 1
            continue
        heading = _HEADING.match(line)
        if heading:
            blocks.append(Block("heading", start, start + len(line), level=len(heading.group(1)),
                                title=heading.group(2).strip()))
            i += 1
            continue
        if _TABLE_LINE.match(line):
            j = i
            while j + 1 < n and _TABLE_LINE.match(lines[j + 1]):
                j += 1
            blocks.append(Block("table", start, offsets[j] + len(lines[j])))
            i = j + 1
            continue
        j = i
        while (j + 1 < n and lines[j + 1].strip() and not _HEADING.match(lines[j + 1])
               and not _FENCE.match(lines[j + 1]) and not _TABLE_LINE.match(lines[j + 1])):
            j += 1
        blocks.append(Block("paragraph", start, offsets[j] + len(lines[j])))
        i = j + 1
    return blocks


def chunk_text(text: str, config: ChunkingConfig, *, title: str = "") -> list[ChunkSpec]:
    """Chunks of `text` by the configured strategy, numbered from 0."""
    if not text.strip():
        return []
    if config.strategy == "whole":
        chunks = [_spec(text, 0, len(text), "")]
    elif config.strategy == "fixed":
        chunks = _fixed(text, config.chunk_tokens, config.overlap_tokens)
    else:
        chunks = _recursive(text, config.chunk_tokens)
    for position, chunk in enumerate(chunks):
        chunk.position = position
    return chunks


def _spec(text: str, start: int, end: int, heading_path: str) -> ChunkSpec:
    # Trim whitespace at the edges so offsets point at the first and last visible characters.
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    body = text[start:end]
    return ChunkSpec(text=body, char_start=start, char_end=end, heading_path=heading_path,
                     token_count=_tokens(body))


# --- recursive --------------------------------------------------------------------------------------

def _sections(blocks: list[Block]) -> list[tuple[str, list[Block]]]:
    """(heading path, blocks) per section; a section starts at each heading and includes it."""
    sections: list[tuple[str, list[Block]]] = []
    stack: list[tuple[int, str]] = []
    current: list[Block] = []
    path = ""
    for block in blocks:
        if block.kind == "heading":
            if current:
                sections.append((path, current))
            while stack and stack[-1][0] >= block.level:
                stack.pop()
            stack.append((block.level, block.title))
            path = HEADING_SEPARATOR.join(title for _, title in stack)
            current = [block]
        else:
            current.append(block)
    if current:
        sections.append((path, current))
    return sections


def _pieces(text: str, block: Block, limit: int) -> list[tuple[int, int, int]]:
    """(start, end, tokens) units of a block no larger than `limit`, except tables and code kept whole."""
    body = text[block.start:block.end]
    tokens = _tokens(body)
    if tokens <= limit or block.kind in ("table", "code", "heading"):
        return [(block.start, block.end, tokens)]
    pieces = []
    cursor = 0
    for match in list(_SENTENCE_END.finditer(body)) + [None]:
        end = match.start() if match else len(body)
        sentence = body[cursor:end]
        if sentence.strip():
            s_tokens = _tokens(sentence)
            if s_tokens <= limit:
                pieces.append((block.start + cursor, block.start + end, s_tokens))
            else:
                pieces.extend(_word_windows(text, block.start + cursor, block.start + end, limit, 0))
        cursor = match.end() if match else len(body)
    return pieces


def _word_windows(text: str, start: int, end: int, limit: int, overlap: int) -> list[tuple[int, int, int]]:
    words = [(start + m.start(), start + m.end(), _tokens(m.group())) for m in _WORD.finditer(text[start:end])]
    return [(s, e, t) for s, e, t, _ in _windows(words, limit, overlap)]


def _windows(units: list[tuple[int, int, int]], limit: int, overlap: int):
    """Greedy windows over (start, end, tokens) units: (start, end, tokens, first unit index) each."""
    out = []
    i = 0
    n = len(units)
    while i < n:
        total = 0
        j = i
        while j < n and (j == i or total + units[j][2] + 1 <= limit):
            total += units[j][2] + (1 if j > i else 0)  # + 1: the separator between units costs a token
            j += 1
        out.append((units[i][0], units[j - 1][1], total, i))
        if j >= n:
            break
        if overlap <= 0:
            i = j
            continue
        back = j
        carried = 0
        while back - 1 > i and carried + units[back - 1][2] <= overlap:
            back -= 1
            carried += units[back][2]
        i = back if back > i else j
    return out


def _recursive(text: str, limit: int) -> list[ChunkSpec]:
    chunks: list[ChunkSpec] = []
    for path, blocks in _sections(blocks_of(text)):
        units: list[tuple[int, int, int]] = []
        for block in blocks:
            units.extend(_pieces(text, block, limit))
        for start, end, _, _ in _windows(units, limit, 0):
            chunk = _spec(text, start, end, path)
            if chunk.text:
                chunks.append(chunk)
    return chunks


# --- fixed windows ----------------------------------------------------------------------------------

def _fixed(text: str, limit: int, overlap: int) -> list[ChunkSpec]:
    blocks = blocks_of(text)
    headings: list[tuple[int, str]] = []  # (offset, heading path from there on)
    stack: list[tuple[int, str]] = []
    units: list[tuple[int, int, int]] = []
    for block in blocks:
        if block.kind == "heading":
            while stack and stack[-1][0] >= block.level:
                stack.pop()
            stack.append((block.level, block.title))
            headings.append((block.start, HEADING_SEPARATOR.join(t for _, t in stack)))
        if block.kind in ("table", "code"):
            units.append((block.start, block.end, _tokens(text[block.start:block.end])))
        else:
            units.extend((block.start + m.start(), block.start + m.end(), _tokens(m.group()))
                         for m in _WORD.finditer(text[block.start:block.end]))

    def path_at(offset: int) -> str:
        path = ""
        for start, heading_path in headings:
            if start > offset:
                break
            path = heading_path
        return path

    chunks = []
    for start, end, _, _ in _windows(units, limit, overlap):
        chunk = _spec(text, start, end, path_at(start))
        if chunk.text:
            chunks.append(chunk)
    return chunks
