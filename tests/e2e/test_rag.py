"""RAG in Chromium: upload a document, watch it index (a real Celery worker), ask a question in the playground,
generate an answer and open a citation at its chunk."""

from pathlib import Path

from playwright.sync_api import expect

from tests.e2e.conftest import log_in

TRAVEL = Path(__file__).resolve().parents[2] / "apps" / "rag" / "demo_corpus" / "handbook-travel.md"


def test_upload_watch_it_index_ask_and_open_a_citation(page, demo_people, celery_worker):
    from apps.accounts.models import Team
    from apps.llm.services import catalog_seed_local
    from apps.rag.services import collection_create

    catalog_seed_local()
    collection = collection_create(team=Team.objects.get(slug="support-ai"), name="E2E handbook",
                                   embedding_model="local-minilm", user=demo_people["olivia"])

    log_in(page, "evan")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="RAG", exact=True).click()
    page.get_by_role("link", name="E2E handbook").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("E2E handbook")

    page.get_by_label("Files").set_input_files(str(TRAVEL))
    page.get_by_role("button", name="Upload and index").click()
    expect(page.get_by_role("status")).to_contain_text("Upload: 1 added")
    row = page.locator("#documents-table tbody tr").first
    expect(row).to_contain_text("handbook-travel.md")
    # The progress panel polls while the job runs, then the table reloads with the new status.
    expect(row.locator("[data-doc-status]")).to_have_text("Indexed", timeout=120_000)
    expect(page.locator("#rag-progress")).to_contain_text("1 indexed")

    page.get_by_role("link", name="Playground").click()
    page.get_by_label("Question").fill("What is the hotel limit per night?")
    page.get_by_role("button", name="Search").click()
    first = page.locator('[data-config="A"] .rag-hit').first
    expect(first).to_contain_text("150 euros per night")
    expect(first.locator(".rag-legs")).to_contain_text("BM25")
    expect(first.locator("mark").first).to_be_visible()

    page.get_by_role("button", name="Generate answer").click()
    citation = page.locator("#rag-answer a.cite").first
    expect(citation).to_be_visible(timeout=60_000)
    expect(page.locator("#rag-answer")).to_contain_text("Groundedness")
    chunk_id = citation.get_attribute("data-chunk")
    citation.click()
    focused = page.locator(f"#chunk-{chunk_id}")
    expect(focused).to_have_class("rag-chunk focus")
    expect(focused).to_be_in_viewport()
    assert collection.pk  # the page belonged to the collection created above


def test_a_file_renamed_pdf_is_refused_next_to_the_file_field(page, demo_people):
    from apps.accounts.models import Team
    from apps.llm.services import catalog_seed_local
    from apps.rag.models import Document
    from apps.rag.services import collection_create

    catalog_seed_local()
    collection_create(team=Team.objects.get(slug="support-ai"), name="E2E uploads", embedding_model="local-minilm",
                      user=demo_people["olivia"])

    log_in(page, "evan")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="RAG", exact=True).click()
    page.get_by_role("link", name="E2E uploads").click()
    page.get_by_label("Files").set_input_files(
        {"name": "scan.pdf", "mimeType": "application/pdf", "buffer": b"PK\x03\x04 a zip renamed to .pdf"})
    page.get_by_role("button", name="Upload and index").click()

    error = page.get_by_text("(scan.pdf) is not a PDF (no %PDF- header)")
    expect(error).to_be_visible()
    assert error.evaluate("e => !!e.closest('form')")  # shown in the upload form, by the field
    assert not Document.objects.exists()
