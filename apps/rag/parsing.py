"""Uploaded bytes -> text the chunkers read. Every format becomes Markdown-like text:

- Markdown and plain text pass through (decoded as UTF-8, else Latin-1);
- HTML keeps its structure: h1-h6 become `#` headings, tables become pipe tables (so the chunkers keep
  them whole), lists become `- ` items, scripts, styles and navigation are dropped;
- PDF (pypdf): the text of each page, pages separated by blank lines; `pages` maps offsets to page numbers.

Failures raise ParseError with a message meant for the document's page ("This PDF is encrypted…").
"""

from __future__ import annotations

import io
import logging
import re
import time
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


# --- PDF ---------------------------------------------------------------------------------------------

# A PDF is compressed: a small file can inflate to gigabytes (a "decompression bomb") or hold one content stream
# that every page repeats. These bounds keep one document's parse within a few hundred MB and about a minute;
# a real document stays far inside them (a page of text is kilobytes of content).
PDF_MAX_STREAM_BYTES = 4 * 1024 * 1024    # one stream, decompressed
PDF_MAX_OPERANDS = 500_000                # operators and operands parsed in one content stream
PDF_MAX_TEXT_CHARS = 10_000_000           # text of the whole document
PDF_MAX_SECONDS = 60                      # reading the whole document
PDF_LIMITS = {
    "zlib_maximum_output_length": PDF_MAX_STREAM_BYTES,
    "lzw_maximum_output_length": PDF_MAX_STREAM_BYTES,
    "run_length_maximum_output_length": PDF_MAX_STREAM_BYTES,
    "brotli_maximum_output_length": PDF_MAX_STREAM_BYTES,
    "jbig2_maximum_output_length": PDF_MAX_STREAM_BYTES,
    "array_based_stream_maximum_output_length": PDF_MAX_STREAM_BYTES,
    "image_maximum_buffer_size": PDF_MAX_STREAM_BYTES,
    "stream_decoding_work_maximum_length": 4 * PDF_MAX_STREAM_BYTES,
    "stream_parsing_work_maximum_count": PDF_MAX_OPERANDS,
    "xform_maximum_invocations_per_extraction": 500,
}


def looks_like_pdf(content: bytes) -> bool:
    """The PDF header within the first kilobyte (where readers look for it)."""
    return b"%PDF-" in content[:1024]


def content_problem(content: bytes, fmt: str) -> str | None:
    """Why these bytes are not a document of this format, checked at upload (before a job is queued)."""
    if fmt == DocumentFormat.PDF:
        if not looks_like_pdf(content):
            return "is not a PDF (no %PDF- header): check the file or its extension"
    elif b"\x00" in content[:4096]:
        return "looks like a binary file, not text: upload .txt, .md, .html or .pdf"
    return None


def _parse_pdf(content: bytes) -> ParsedDocument:
    from pypdf import PdfReader, apply_configuration  # why: pypdf takes ~0.5 s to import; only PDFs need it
    from pypdf.errors import LimitReachedError, PdfReadError, PyPdfError  # why: as above

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed files log loudly; the error says enough
    if not looks_like_pdf(content):
        raise ParseError("This file is not a PDF (it does not start with %PDF). Check the file or its extension.")
    deadline = time.monotonic() + PDF_MAX_SECONDS
    try:
        with apply_configuration(**PDF_LIMITS):
            reader = PdfReader(io.BytesIO(content))
            if reader.is_encrypted:
                try:
                    if not reader.decrypt(""):
                        raise ParseError("This PDF is password-protected; upload a copy without a password.")
                except (NotImplementedError, PyPdfError) as exc:
                    raise ParseError("This PDF is encrypted and cannot be read; upload a copy without a "
                                     "password.") from exc
            parts: list[str] = []
            pages: list[tuple[int, int]] = []
            offset = 0
            for number, page in enumerate(reader.pages, start=1):
                if time.monotonic() > deadline:
                    raise ParseError(f"Reading this PDF took longer than {PDF_MAX_SECONDS} seconds (stopped at "
                                     f"page {number}); split it or re-export it.")
                text = _normalise(page.extract_text() or "")
                reader.resolved_objects.clear()  # decoded streams are not kept from page to page
                if offset + len(text) > PDF_MAX_TEXT_CHARS:
                    raise ParseError(f"This PDF holds more than {PDF_MAX_TEXT_CHARS:,} characters of text (at "
                                     f"page {number}); split it into smaller documents.")
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
    except LimitReachedError as exc:
        raise ParseError("This PDF inflates beyond what the portal reads (more than "
                         f"{PDF_MAX_STREAM_BYTES // (1024 * 1024)} MB in one stream, or too many operations on "
                         "a page): it may be a decompression bomb; re-export it.") from exc
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            RecursionError, ZeroDivisionError, OSError, MemoryError) as exc:
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
