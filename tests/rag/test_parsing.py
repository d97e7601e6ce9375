"""Parsing uploads: PDFs (good, broken, encrypted, not a PDF), text encodings, unsupported types."""

import io

import pytest

from apps.rag.parsing import ParseError, format_for, parse


def make_pdf(pages: list[str], password: str | None = None) -> bytes:
    """A real PDF with a text layer, written by hand (pypdf cannot draw text)."""
    objects = []
    kids = []
    font_id = 3 + 2 * len(pages)
    for i, text in enumerate(pages):
        page_id, content_id = 3 + 2 * i, 4 + 2 * i
        kids.append(f"{page_id} 0 R")
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode()
        objects.append((page_id, f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
                                 f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()))
        objects.append((content_id, b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream
                        + b"\nendstream"))
    objects.append((font_id, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"))
    objects = [(1, b"<< /Type /Catalog /Pages 2 0 R >>"),
               (2, f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>".encode()), *objects]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = {}
    for number, body in sorted(objects):
        offsets[number] = out.tell()
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    count = len(objects) + 1
    out.write(f"xref\n0 {count}\n0000000000 65535 f \n".encode())
    for number in range(1, count):
        out.write(f"{offsets[number]:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {count} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    data = out.getvalue()
    if password:
        from pypdf import PdfReader, PdfWriter

        writer = PdfWriter()
        for page in PdfReader(io.BytesIO(data)).pages:
            writer.add_page(page)
        writer.encrypt(password)
        buffer = io.BytesIO()
        writer.write(buffer)
        data = buffer.getvalue()
    return data


def test_pdf_text_and_pages_are_extracted():
    parsed = parse(make_pdf(["Refunds take 14 days.", "Shipping is free over 50 euros."]), "pdf")
    assert "Refunds take 14 days." in parsed.text
    assert "Shipping is free" in parsed.text
    assert [number for _, number in parsed.pages] == [1, 2]
    assert parsed.page_at(parsed.text.index("Shipping")) == 2


def test_a_truncated_pdf_raises_a_readable_error():
    broken = make_pdf(["Hello world"])[:60]
    with pytest.raises(ParseError, match="could not be read|no text"):
        parse(broken, "pdf")


def test_a_file_that_is_not_a_pdf_says_so():
    with pytest.raises(ParseError, match="not a PDF"):
        parse(b"<html>hello</html>", "pdf")


def test_a_password_protected_pdf_says_so():
    with pytest.raises(ParseError, match="password|encrypted"):
        parse(make_pdf(["secret"], password="hunter2"), "pdf")


def test_a_pdf_without_text_says_to_run_ocr():
    with pytest.raises(ParseError, match="OCR"):
        parse(make_pdf([""]), "pdf")


def test_latin1_text_is_decoded_and_binary_refused():
    assert "café" in parse("café au lait".encode("latin-1"), "txt").text
    with pytest.raises(ParseError, match="binary"):
        parse(b"\x00\x01\x02binary", "txt")


@pytest.mark.parametrize("name, fmt", [("a.md", "md"), ("A.PDF", "pdf"), ("x.htm", "html"), ("notes.txt", "txt"),
                                       ("sheet.xlsx", None), ("noext", None)])
def test_format_from_the_file_name(name, fmt):
    assert format_for(name) == fmt
