"""Uploads are checked for what they are at upload (a .pdf that is no PDF is refused next to the file field),
and a PDF built to inflate to gigabytes is refused within a memory bound instead of stalling the indexer."""

import tracemalloc
import zlib

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.rag import parsing
from apps.rag.models import Document, DocumentStatus
from apps.rag.parsing import ParseError, parse
from apps.rag.services import document_upload
from tests.rag.conftest import run_jobs

pytestmark = pytest.mark.django_db


def repeated_flate(prefix: bytes, chunk: bytes, count: int, suffix: bytes) -> bytes:
    """A real zlib stream of prefix + chunk × count + suffix, built without compressing `count` chunks: after a
    full flush deflate starts afresh, so each chunk's block is the same bytes. The Adler-32 is computed in closed
    form, so the stream is valid to its last byte."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = co.compress(prefix) + co.flush(zlib.Z_FULL_FLUSH)
    block = co.compress(chunk) + co.flush(zlib.Z_FULL_FLUSH)
    tail = co.compress(suffix) + co.flush()
    a, b = 1, 0
    for data, k in ((prefix, 1), (chunk, count), (suffix, 1)):
        s, n = sum(data), len(data)
        t = sum((n - i) * byte for i, byte in enumerate(data))
        b = (b + k * n * a + n * s * (k * (k - 1) // 2) + k * t) % 65521
        a = (a + k * s) % 65521
    return b"\x78\xda" + head + block * count + tail + ((b << 16) | a).to_bytes(4, "big")


def pdf(page_streams: list[int], streams: list[bytes]) -> bytes:
    """A minimal PDF whose page i draws FlateDecode content stream page_streams[i]."""
    first_stream = 3 + len(page_streams)
    font = first_stream + len(streams)
    kids = b" ".join(b"%d 0 R" % (3 + i) for i in range(len(page_streams)))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % len(page_streams)]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (first_stream + s, font) for s in page_streams]
    objects += [b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(d) + d + b"\nendstream" for d in streams]
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out, offsets = bytearray(b"%PDF-1.7\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_the_bomb_builder_makes_real_streams():
    stream = repeated_flate(b"BT (", b"AB" * 500, 40, b") Tj ET")
    assert zlib.decompress(stream) == b"BT (" + b"AB" * 20_000 + b") Tj ET"
    assert "Hello" in parse(pdf([0], [repeated_flate(b"BT /F1 12 Tf (", b"Hello ", 3, b") Tj ET")]), "pdf").text


def test_a_pdf_inflating_to_gigabytes_is_refused_within_a_memory_bound():
    two_gib_of_spaces = repeated_flate(b"", b" " * (1 << 20), 2048, b"")
    bomb = pdf([0], [two_gib_of_spaces])
    assert len(bomb) < 3 * 1024 * 1024  # under the upload limit
    tracemalloc.start()
    try:
        with pytest.raises(ParseError, match="decompression bomb"):
            parse(bomb, "pdf")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * parsing.PDF_MAX_STREAM_BYTES  # 64 MiB, against the 2 GiB the stream holds


def test_one_stream_repeated_on_every_page_is_stopped_by_the_text_and_time_budgets(monkeypatch):
    text_stream = repeated_flate(b"BT /F1 12 Tf (", b"A" * 1000, 60, b") Tj ET")  # 60,000 characters
    bomb = pdf([0] * 500, [text_stream])  # ... on 500 pages: 30 million characters from a small file
    monkeypatch.setattr(parsing, "PDF_MAX_TEXT_CHARS", 100_000)
    with pytest.raises(ParseError, match="more than 100,000 characters of text"):
        parse(bomb, "pdf")
    monkeypatch.setattr(parsing, "PDF_MAX_SECONDS", -1)
    with pytest.raises(ParseError, match="took longer than"):
        parse(bomb, "pdf")


def test_a_bomb_uploaded_for_indexing_fails_with_its_reason(collection, owner):
    bomb = pdf([0], [repeated_flate(b"", b" " * (1 << 20), 64, b"")])  # 64 MiB in one stream
    document_upload(collection=collection, name="bomb.pdf", content=bomb, user=owner)
    run_jobs(collection)
    doc = Document.objects.get()
    assert doc.status == DocumentStatus.FAILED and "decompression bomb" in doc.error


@pytest.mark.parametrize("name,content,message", [
    ("report.pdf", b"PK\x03\x04 this is a zip file", r"\(report.pdf\) is not a PDF"),
    ("notes.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"\(notes.txt\) looks like a binary file"),
])
def test_a_file_that_is_not_what_its_name_says_is_refused_at_upload(collection, owner, name, content, message):
    with pytest.raises(ValidationError, match=message):
        document_upload(collection=collection, name=name, content=content, user=owner)
    assert not Document.objects.exists()


def test_the_api_and_the_page_refuse_a_fake_pdf_next_to_the_file(collection, client_for, engineer, team,
                                                                 token_for, client):
    _, secret = token_for(engineer, team, scope="write")
    fake = b"<html>not a pdf</html>"
    api = client.post(f"/api/v1/rag/collections/{collection.pk}/documents",
                      {"file": SimpleUploadedFile("fake.pdf", fake)}, HTTP_AUTHORIZATION=f"Bearer {secret}")
    page = client_for(engineer).post(f"/rag/{collection.pk}/upload/", {"file": SimpleUploadedFile("fake.pdf", fake)})

    assert api.status_code == 422 and "(fake.pdf) is not a PDF" in api.content.decode()
    assert page.status_code == 400 and "(fake.pdf) is not a PDF" in page.content.decode()
    assert not Document.objects.exists()
