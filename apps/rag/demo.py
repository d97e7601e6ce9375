"""Demo data for RAG: a "Company handbook" collection of the Support AI team built from the documents the project
ships (apps/rag/demo_corpus/), the default answer prompt in the catalog, and a retrieval dataset for it.

    seed_demo_rag(people, teams)                  # queue indexing for the worker (keeps `make run` start-up fast)
    seed_demo_rag(people, teams, index_now=True)  # index in this process with the offline MiniLM (~10-30 s)

Idempotent: a second run finds the collection, re-syncs the documents by content hash (nothing changes) and
leaves the dataset alone.
"""

from __future__ import annotations

from pathlib import Path

from apps.llm.services import catalog_seed_local
from apps.rag.answers import answer_prompt_ensure
from apps.rag.evaluation import dataset_import
from apps.rag.indexing import indexing_job_run
from apps.rag.models import Collection
from apps.rag.parsing import format_for
from apps.rag.services import DocumentInput, collection_create, documents_upsert

CORPUS_DIR = Path(__file__).parent / "demo_corpus"
COLLECTION = "Company handbook"
DATASET = "handbook-questions"


def demo_documents():
    items = []
    for path in sorted(CORPUS_DIR.iterdir()):
        fmt = format_for(path.name)
        if fmt is None or not path.is_file() or path.name == "README.md":
            continue
        metadata = {"source": "portal docs" if path.name.startswith("portal-") else "handbook"}
        items.append(DocumentInput(source_name=path.name, content=path.read_bytes(), format=fmt, metadata=metadata))
    return items


def seed_demo_rag(people: dict, teams: dict, *, index_now: bool = False):
    catalog_seed_local()
    team = teams["support-ai"]
    owner = people.get("olivia")
    answer_prompt_ensure(team=team, actor=owner)
    collection = Collection.objects.filter(team=team, name=COLLECTION).first()
    if collection is None:
        collection = collection_create(
            team=team, name=COLLECTION, embedding_model="local-minilm", answer_model="local-extractive",
            description="Northwind's handbook (leave, travel, remote work, IT security) and two pages of the "
                        "portal's own docs: ask it questions in the playground.",
            data_class="internal", chunking={"strategy": "recursive", "chunk_tokens": 200}, user=owner)
    result = documents_upsert(collection=collection, items=demo_documents(), user=owner, trigger="seed",
                              queue_task=not index_now)
    if index_now and result.job is not None:
        indexing_job_run(result.job.pk)
    if not collection.datasets.filter(name=DATASET).exists():
        dataset_import(collection=collection, name=DATASET, split="test", user=owner,
                       description="Questions about the demo handbook, judged by hand.",
                       queries_text=(CORPUS_DIR / "dataset" / "queries.jsonl").read_text(encoding="utf-8"),
                       qrels_text=(CORPUS_DIR / "dataset" / "qrels" / "test.tsv").read_text(encoding="utf-8"))
    return collection
