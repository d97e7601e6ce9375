"""RAG REST API under /api/v1/rag: the same selectors and services as the pages, tenant-filtered in SQL.

A token acts within its team: another team's collection answers 404 and its chunks are never retrieved.
"""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404
from ninja import File, Query, Router, Schema
from ninja.files import UploadedFile
from ninja.responses import Status

from apps.accounts.models import Team
from apps.accounts.permissions import Action, can
from apps.core.api_errors import errors
from apps.rag import evaluation, selectors, services
from apps.rag.answers import answer_question, chunk_url
from apps.rag.config import RetrievalConfig
from apps.rag.models import IndexingJob
from apps.rag.retrieval import retrieve

router = Router(tags=["rag"])


def _actor(request):
    return request.auth


class CollectionOut(Schema):
    id: int
    name: str
    team: str
    description: str
    data_class: str
    embedding_model: str
    embedding_dimensions: int
    chunking: dict
    retrieval: dict
    chunk_count: int


class CollectionIn(Schema):
    team: str
    name: str
    description: str = ""
    data_class: str = "internal"
    embedding_model: str = "local-minilm"
    answer_model: str | None = None
    chunking: dict = {}
    retrieval: dict = {}


def _collection_out(c) -> CollectionOut:
    return CollectionOut(id=c.pk, name=c.name, team=c.team.slug, description=c.description, data_class=c.data_class,
                         embedding_model=c.embedding_model.name, embedding_dimensions=c.embedding_dimensions,
                         chunking=c.chunking, retrieval=c.retrieval, chunk_count=c.chunk_count)


@router.get("/collections", response=list[CollectionOut], summary="Collections the caller may read")
def collection_list(request):
    return [_collection_out(c) for c in selectors.collection_list(actor=_actor(request))]


@router.post("/collections", response={201: CollectionOut, **errors(403, 422)}, summary="Create a collection in a team")
def collection_create(request, payload: CollectionIn):
    team = Team.objects.filter(slug=payload.team).first()
    if team is None or not can(_actor(request), Action.CHANGE, team):
        raise PermissionDenied("You may not create collections in this team.")
    collection = services.collection_create(
        team=team, name=payload.name, description=payload.description, data_class=payload.data_class,
        embedding_model=payload.embedding_model, answer_model=payload.answer_model, chunking=payload.chunking,
        retrieval=payload.retrieval, user=request.user)
    return Status(201, _collection_out(collection))


@router.get("/collections/{collection_id}", response={200: CollectionOut, **errors(404)})
def collection_detail(request, collection_id: int):
    return _collection_out(selectors.collection_get(actor=_actor(request), pk=collection_id))


class DocumentOut(Schema):
    id: int
    source_name: str
    title: str
    format: str
    status: str
    error: str
    version: int
    indexed_version: int | None
    content_hash: str
    chunk_count: int
    indexed_at: datetime | None
    metadata: dict


def _document_out(d) -> DocumentOut:
    return DocumentOut(id=d.pk, source_name=d.source_name, title=d.title, format=d.format, status=d.status,
                       error=d.error, version=d.version, indexed_version=d.indexed_version,
                       content_hash=d.content_hash, chunk_count=d.chunk_count, indexed_at=d.indexed_at,
                       metadata=d.metadata)


@router.get("/collections/{collection_id}/documents", response={200: list[DocumentOut], **errors(404)})
def document_list(request, collection_id: int, status: str = "",
                  limit: int = Query(100, ge=1), offset: int = Query(0, ge=0, le=1_000_000_000)):
    collection = selectors.collection_get(actor=_actor(request), pk=collection_id)
    docs = selectors.document_list(collection=collection, status=status)[offset:offset + min(limit, 1000)]
    return [_document_out(d) for d in docs]


class UploadOut(Schema):
    created: list[str]
    changed: list[str]
    unchanged: list[str]
    job: int | None


@router.post("/collections/{collection_id}/documents", response={201: UploadOut, **errors(403, 404, 422)},
             summary="Upload a document (multipart `file`); same name replaces it, unchanged content is skipped")
def document_upload(request, collection_id: int, file: UploadedFile = File(...)):  # noqa: B008 (ninja's idiom)
    collection = selectors.collection_get(actor=_actor(request), pk=collection_id, action=Action.CHANGE)
    services.validate_upload(file.name, file.size)
    result = services.document_upload(collection=collection, name=file.name, content=file.read(),
                                      user=request.user)
    return Status(201, UploadOut(created=[d.source_name for d in result.created],
                                 changed=[d.source_name for d in result.changed],
                                 unchanged=[d.source_name for d in result.unchanged],
                                 job=result.job.pk if result.job else None))


@router.delete("/collections/{collection_id}/documents/{document_id}", response={204: None, **errors(403, 404)})
def document_delete(request, collection_id: int, document_id: int):
    collection = selectors.collection_get(actor=_actor(request), pk=collection_id, action=Action.CHANGE)
    services.document_delete(document=selectors.document_get(collection=collection, pk=document_id),
                             user=request.user)
    return Status(204, None)


class JobOut(Schema):
    id: int
    status: str
    progress_done: int
    progress_total: int
    documents_failed: int
    chunks_written: int
    error: str
    attempts: int


@router.get("/collections/{collection_id}/jobs/{job_id}", response={200: JobOut, **errors(404)})
def job_detail(request, collection_id: int, job_id: int):
    collection = selectors.collection_get(actor=_actor(request), pk=collection_id)
    job = get_object_or_404(IndexingJob, collection=collection, pk=job_id)
    return JobOut(id=job.pk, status=job.status, progress_done=job.progress_done, progress_total=job.progress_total,
                  documents_failed=job.documents_failed, chunks_written=job.chunks_written, error=job.error,
                  attempts=job.attempts)


class SearchIn(Schema):
    query: str
    config: dict = {}  # overrides of the collection's retrieval defaults (mode, k, k1, b, fusion, filters…)


class HitOut(Schema):
    rank: int
    chunk_id: int
    document_id: int
    source_name: str
    heading_path: str
    text: str
    char_start: int
    char_end: int
    fused_score: float | None
    bm25_rank: int | None
    bm25_score: float | None
    vector_rank: int | None
    vector_similarity: float | None
    matched_terms: list[str]


class SearchOut(Schema):
    query: str
    config: dict
    hits: list[HitOut]
    timings_ms: dict
    notes: list[str]


def _config(collection, overrides: dict) -> RetrievalConfig:
    if not isinstance(overrides, dict):
        raise ValidationError({"config": "config is a JSON object."})
    return RetrievalConfig.from_dict({**collection.retrieval, **overrides})


@router.post("/collections/{collection_id}/search", response={200: SearchOut, **errors(404, 422)},
             summary="Hybrid retrieval with each leg's rank and score per chunk")
def search(request, collection_id: int, payload: SearchIn):
    collection = selectors.collection_get_for_search(actor=_actor(request), pk=collection_id)
    result = retrieve(collection=collection, query=payload.query, actor=_actor(request),
                      config=_config(collection, payload.config), explain=False)
    return SearchOut(query=result.query, config=result.config.as_dict(), timings_ms=result.timings, notes=result.notes,
                     hits=[HitOut(rank=h.fused_rank, chunk_id=h.chunk_id, document_id=h.document_id,
                                  source_name=h.source_name, heading_path=h.heading_path, text=h.text,
                                  char_start=h.char_start, char_end=h.char_end, fused_score=h.fused_score,
                                  bm25_rank=h.bm25_rank, bm25_score=h.bm25_score, vector_rank=h.vector_rank,
                                  vector_similarity=h.vector_similarity, matched_terms=h.matched_terms)
                           for h in result.hits])


class CitationOut(Schema):
    number: int
    chunk_id: int
    document_id: int
    source_name: str
    url: str


class AnswerOut(Schema):
    answer: str
    citations: list[CitationOut]
    groundedness: float | None
    unsupported_sentences: list[str]
    model: str
    prompt_name: str
    prompt_version: int | None
    input_tokens: int
    output_tokens: int
    latency_ms: int


@router.post("/collections/{collection_id}/answer", response={200: AnswerOut, **errors(404, 422)},
             summary="A grounded answer with [n] citations (recorded with source rag)")
def answer(request, collection_id: int, payload: SearchIn):
    actor = _actor(request)
    collection = selectors.collection_get(actor=actor, pk=collection_id)
    result = retrieve(collection=collection, query=payload.query, actor=actor,
                      config=_config(collection, payload.config))
    out = answer_question(collection=collection, retrieval=result, user=request.user)
    hits = result.hits
    return AnswerOut(
        answer=out.text, groundedness=out.groundedness, model=out.model, prompt_name=out.prompt_name,
        prompt_version=out.prompt_version, input_tokens=out.input_tokens, output_tokens=out.output_tokens,
        latency_ms=out.latency_ms,
        unsupported_sentences=[s.text for s in out.sentences if s.supported_by is None and not s.abstention],
        citations=[CitationOut(number=n, chunk_id=hits[n - 1].chunk_id, document_id=hits[n - 1].document_id,
                               source_name=hits[n - 1].source_name,
                               url=chunk_url(collection.pk, hits[n - 1].document_id, hits[n - 1].chunk_id))
                   for n in out.citations])


class EvalRunIn(Schema):
    dataset: str
    label: str = ""
    config: dict = {}


class EvalRunOut(Schema):
    id: int
    status: str
    progress_done: int
    progress_total: int
    metrics: dict
    config: dict
    error: str


def _run_out(run) -> EvalRunOut:
    return EvalRunOut(id=run.pk, status=run.status, progress_done=run.progress_done,
                      progress_total=run.progress_total, metrics=run.metrics, config=run.config, error=run.error)


@router.post("/collections/{collection_id}/eval-runs", response={201: EvalRunOut, **errors(403, 404, 422)},
             summary="Start a retrieval eval run (background) on one of the collection's datasets")
def eval_run_create(request, collection_id: int, payload: EvalRunIn):
    collection = selectors.collection_get(actor=_actor(request), pk=collection_id, action=Action.CHANGE)
    dataset = selectors.dataset_list(collection=collection).filter(name=payload.dataset).first()
    if dataset is None:
        raise ValidationError({"dataset": f"{collection.name} has no dataset named {payload.dataset!r}."})
    run = evaluation.eval_run_create(dataset=dataset, config=_config(collection, payload.config),
                                     collection=collection, label=payload.label, user=request.user)
    return Status(201, _run_out(run))


@router.get("/collections/{collection_id}/eval-runs/{run_id}", response={200: EvalRunOut, **errors(404)})
def eval_run_detail(request, collection_id: int, run_id: int):
    collection = selectors.collection_get(actor=_actor(request), pk=collection_id)
    return _run_out(selectors.run_get(collection=collection, pk=run_id))
