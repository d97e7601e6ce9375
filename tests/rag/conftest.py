"""RAG fixtures: the offline models, a collection of the `team` fixture, and helpers to index synchronously."""

import hashlib
import math
import re

import pytest

from apps.llm.services import catalog_seed_local

_WORD = re.compile(r"[a-z0-9]+")


def hashed_embedding(text: str, dims: int = 384) -> list[float]:
    """A deterministic bag-of-words vector: texts sharing words are similar. Stands in for MiniLM in tests."""
    vector = [0.0] * dims
    for word in _WORD.findall(text.lower()):
        word = word[:5]  # a crude stem: "dogs" and "dog" meet
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest[:4], "big") % dims] += 1.0 if digest[4] % 2 else -1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    if norm == 1.0 and not any(vector):
        vector[0] = 1.0
    return [x / norm for x in vector]


def pytest_configure(config):
    config.addinivalue_line("markers", "real_minilm: embed with the real MiniLM model instead of hashed vectors")


@pytest.fixture(autouse=True)
def fast_embeddings(request, monkeypatch):
    """MiniLM is slow on a shared 2-core machine; most tests only need consistent vectors."""
    if request.node.get_closest_marker("real_minilm"):
        return
    from apps.llm.offline import embeddings

    def count(texts):
        return sum(len(t.split()) + 2 for t in texts)

    monkeypatch.setattr(embeddings, "embed_texts", lambda texts: [hashed_embedding(t) for t in texts])
    monkeypatch.setattr(embeddings, "count_tokens", count)
    # what the offline adapter calls (vectors and word pieces in one go)
    monkeypatch.setattr(embeddings, "embed", lambda texts: embeddings.Embedded(
        vectors=[hashed_embedding(t) for t in texts], tokens=count(texts)))
    monkeypatch.setattr(embeddings, "embed_ahead", lambda text: None)  # `embed` above answers at once


@pytest.fixture
def local_models(db):
    catalog_seed_local()
    from apps.llm.models import Model

    return {"embedding": Model.objects.get(name="local-minilm"), "chat": Model.objects.get(name="local-extractive")}


@pytest.fixture
def make_collection(team, local_models, owner):
    from apps.rag.services import collection_create

    def make(name="Handbook", *, team=team, chunking=None, retrieval=None, data_class="internal", user=owner):
        return collection_create(team=team, name=name, embedding_model=local_models["embedding"],
                                 answer_model=local_models["chat"], chunking=chunking, retrieval=retrieval,
                                 data_class=data_class, user=user)

    return make


@pytest.fixture
def collection(make_collection):
    return make_collection()


def run_jobs(collection):
    """Run every queued indexing job of the collection in this process (what the worker does)."""
    from apps.rag.indexing import indexing_job_run
    from apps.rag.models import IndexingJob, JobStatus

    for job_id in IndexingJob.objects.filter(collection=collection, status=JobStatus.QUEUED).values_list(
            "pk", flat=True).order_by("pk"):
        indexing_job_run(job_id)
    collection.refresh_from_db()


def add_text(collection, name, text, *, user=None, metadata=None, index=True):
    from apps.rag.services import document_upload

    result = document_upload(collection=collection, name=name, content=text.encode(), user=user, metadata=metadata)
    if index:
        run_jobs(collection)
    return result


@pytest.fixture
def stream():
    """The gateway's recording stream, emptied: the queued usage records of this test only (ADR 0047, 0121)."""
    from apps.core import redis as portal_redis
    from apps.gateway import recording

    client = portal_redis.client()
    client.delete(recording.stream_key())
    return client
