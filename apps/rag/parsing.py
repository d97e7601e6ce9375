"""Uploaded bytes -> text the chunkers read. Every format becomes Markdown-like text:

- Markdown and plain text pass through (decoded as UTF-8, else Latin-1);
- HTML keeps its structure: h1-h6 become `#` headings, tables become pipe tables (so the chunkers keep
  them whole), lists become `- ` items, scripts, styles and navigation are dropped;
- PDF (pypdf): the text of each page, pages separated by blank lines; `pages` maps offsets to page numbers.

Failures raise ParseError with a message meant for the document's page ("This PDF is encrypted…").
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from apps.rag.models import DocumentFormat


class ParseError(Exception):
    """The document cannot be read; the message says why, for the person who uploaded it."""


@dataclass
class ParsedDocument:
    text: str
    title: str = ""
    pages: list[tuple[int, int]] = field(default_factory=list)  # (char offset where the page starts, page no)

    def page_at(self, offset: int) -> int | None:
        page = None
        for start, number in self.pages:
            if start > offset:
                break
            page = number
        return page


EXTENSIONS = {
    ".txt": DocumentFormat.TEXT, ".text": DocumentFormat.TEXT,
    ".md": DocumentFormat.MARKDOWN, ".markdown": DocumentFormat.MARKDOWN,
    ".html": DocumentFormat.HTML, ".htm": DocumentFormat.HTML,
    ".pdf": DocumentFormat.PDF,
}


def format_for(filename: str) -> str | None:
    """The document format a file name implies, or None when the portal cannot read it."""
    name = (filename or "").lower()
    for ext, fmt in EXTENSIONS.items():
        if name.endswith(ext):
            return fmt
    return None


def parse(content: bytes, fmt: str, *, source_name: str = "") -> ParsedDocument:
    if fmt == DocumentFormat.PDF:
        parsed = _parse_pdf(content)
    elif fmt == DocumentFormat.HTML:
        parsed = _parse_html(_decode(content))
    elif fmt in (DocumentFormat.MARKDOWN, DocumentFormat.TEXT):
        text = _normalise(_decode(content))
        parsed = ParsedDocument(text=text, title=_markdown_title(text) if fmt == DocumentFormat.MARKDOWN else "")
    else:
        raise ParseError(f"The portal cannot read '{fmt}' documents.")
    if not parsed.text.strip():
        raise ParseError("The document has no text to index." + (
            " (A PDF of scanned images has no text layer; run OCR first.)" if fmt == DocumentFormat.PDF else ""))
    return parsed


def _decode(content: bytes) -> str:
    if b"\x00" in content[:4096]:
        raise ParseError("This looks like a binary file, not text. Upload .txt, .md, .html or .pdf.")
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return content.decode("latin-1")


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def _markdown_title(text: str) -> str:
    match = re.search(r"(?m)^#\s+(.+?)\s*#*\s*$", text)
    return match.group(1).strip()[:500] if match else ""


# --- PDF ------------------------------------------------------------------------------------------

def _parse_pdf(content: bytes) -> ParsedDocument:
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PyPdfError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed files log loudly; the error says enough
    if not content.lstrip().startswith(b"%PDF"):
        raise ParseError("This file is not a PDF (it does not start with %PDF). Check the file or its extension.")
    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    raise ParseError("This PDF is password-protected; upload a copy without a password.")
            except (NotImplementedError, PyPdfError) as exc:
                raise ParseError("This PDF is encrypted and cannot be read; upload a copy without a password.") from exc
        parts: list[str] = []
        pages: list[tuple[int, int]] = []
        offset = 0
        for number, page in enumerate(reader.pages, start=1):
            text = _normalise(page.extract_text() or "")
            if not text.strip():
                continue
            if parts:
                offset += 2  # the blank line between pages
            pages.append((offset, number))
            parts.append(text)
            offset += len(text)
        title = ""
        try:
            title = str((reader.metadata or {}).get("/Title") or "").strip()[:500]
        except PyPdfError:
            title = ""
    except ParseError:
        raise
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            RecursionError, ZeroDivisionError, OSError) as exc:
        raise ParseError(f"This PDF could not be read ({type(exc).__name__}: {str(exc)[:200]}). "
                         "It may be damaged; try re-exporting it.") from exc
    return ParsedDocument(text="\n\n".join(parts), title=title, pages=pages)


# --- HTML -----------------------------------------------------------------------------------------

_SKIP = {"script", "style", "noscript", "template", "nav", "header", "footer", "svg", "head"}
_BLOCK = {"p", "div", "section", "article", "main", "aside", "blockquote", "pre", "ul", "ol", "dl", "dt", "dd",
          "figure", "figcaption", "form", "fieldset", "address", "details", "summary"}
_VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr"}


class _HtmlToMarkdown(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip_depth = 0
        self.title = ""
        self._in_title = False
        self._heading: int | None = None
        self._table: list[list[str]] | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._pre = 0

    def _emit(self, text: str) -> None:
        if self._cell is not None:
            self._cell.append(text)
        else:
            self.out.append(text)

    def _block_break(self) -> None:
        if self._cell is None:
            self.out.append("\n\n")

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self._in_title = True
            return
        if tag in _SKIP:
            self.skip_depth += 1
            return
        if self.skip_depth:
            return
        if tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            self._block_break()
            self._heading = int(tag[1])
            self._emit("#" * self._heading + " ")
        elif tag == "table":
            self._block_break()
            self._table = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "li":
            self._emit("\n- ")
        elif tag == "br":
            self._emit("\n")
        elif tag == "pre":
            self._pre += 1
            self._block_break()
        elif tag in _BLOCK:
            self._block_break()

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
            return
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if self.skip_depth:
            return
        if tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            self._heading = None
            self._block_break()
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()).replace("|", "\\|"))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            if self._row:
                self._table.append(self._row)
            self._row = None
        elif tag == "table" and self._table is not None:
            self.out.append(_pipe_table(self._table))
            self._table = None
            self._block_break()
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
            self._block_break()
        elif tag in _BLOCK:
            self._block_break()

    def handle_data(self, data):
        if self._in_title:
            self.title += data
            return
        if self.skip_depth:
            return
        if self._table is not None and self._cell is None:
            return  # whitespace between cells
        if self._pre:
            self._emit(data)
        else:
            collapsed = re.sub(r"\s+", " ", data)
            if self._heading is not None:
                collapsed = collapsed.replace("\n", " ")
            self._emit(collapsed)


def _pipe_table(rows: list[list[str]]) -> str:
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(["---"] * width) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def _parse_html(html: str) -> ParsedDocument:
    parser = _HtmlToMarkdown()
    try:
        parser.feed(html)
        parser.close()
    except Exception as exc:  # html.parser is lenient; anything it raises means unreadable input
        raise ParseError(f"This HTML could not be read ({type(exc).__name__}).") from exc
    raw = "".join(parser.out)
    lines = [line.strip() if not line.startswith("|") else line.rstrip() for line in raw.split("\n")]
    text = _normalise("\n".join(lines))
    title = " ".join(parser.title.split())[:500] or _markdown_title(text)
    return ParsedDocument(text=text, title=title)
