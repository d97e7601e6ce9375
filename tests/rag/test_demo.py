"""The demo: a collection from the shipped documents, indexed with the offline model, and its dataset."""

import pytest

from apps.rag.config import RetrievalConfig
from apps.rag.evaluation import dataset_queries, evaluate
from apps.rag.models import Document, DocumentStatus

pytestmark = pytest.mark.django_db


@pytest.mark.real_minilm
def test_seed_demo_rag_builds_an_indexed_collection_with_a_dataset_and_is_idempotent():
    from apps.rag.demo import seed_demo_rag
    from portal.demo import seed_demo_accounts

    accounts = seed_demo_accounts()
    collection = seed_demo_rag(accounts["people"], accounts["teams"], index_now=True)
    docs = Document.objects.filter(collection=collection)
    assert docs.count() == 6 and set(docs.values_list("status", flat=True)) == {DocumentStatus.INDEXED}
    assert docs.get(source_name="it-security.html").chunks.filter(text__contains="| Restricted |").count() == 1
    dataset = collection.datasets.get()
    assert dataset.query_count == 14
    outcome = evaluate(collection, dataset_queries(dataset), RetrievalConfig())
    assert outcome.metrics["hybrid"]["recall@10"] == 1.0
    chunks_before = set(collection.documents.values_list("chunks__pk", flat=True))
    again = seed_demo_rag(accounts["people"], accounts["teams"], index_now=True)
    assert again.pk == collection.pk
    assert set(collection.documents.values_list("chunks__pk", flat=True)) == chunks_before

    from apps.prompts.models import Prompt

    prompt = Prompt.objects.get(name="rag/grounded-answer")
    assert prompt.latest_version_number == 1  # production moves only through a promotion request
