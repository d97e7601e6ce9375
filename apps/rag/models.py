"""RAG: collections of documents, their chunks (pgvector + BM25 postings), indexing jobs, retrieval evals.

Where the text lives:
- `Document.content` holds the uploaded bytes (so a worker on another machine can parse them) and
  `Document.text` the parsed text that chunks point into (`char_start`/`char_end`) and citations open.
- `Chunk.embedding` is an undimensioned pgvector column: each collection gets its own partial HNSW index
  on `(embedding::vector(<dims>))` where collection_id = <id> (selectors/vector leg, ADR 0040), so
  collections with different embedding models share one table and a collection's search never starves
  behind another's rows.
- `Posting` is the BM25 inverted index: one row per (chunk, term) with the term frequency and the
  chunk's length, fed by `rag_tsvector` (PostgreSQL's own `english` text-search configuration after
  splitting words at inner hyphens; migration 0004).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from pgvector.django import VectorField

from apps.core.models import JobRow


class DataClass(models.TextChoices):
    PUBLIC = "public", "Public"
    INTERNAL = "internal", "Internal"
    CONFIDENTIAL = "confidential", "Confidential"
    PII = "pii", "Personal data (PII)"
    SPECIAL = "special_category", "Special-category personal data"


class Collection(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="rag_collections")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    data_class = models.CharField(max_length=24, choices=DataClass.choices, default=DataClass.INTERNAL)
    embedding_model = models.ForeignKey("llm.Model", on_delete=models.PROTECT, related_name="+")
    # Fixed at creation: the vectors already stored have this size (the HNSW index is built for it).
    embedding_dimensions = models.PositiveIntegerField()
    answer_model = models.ForeignKey("llm.Model", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+", help_text="Chat model for answers (and LLM rerank)")
    answer_prompt = models.CharField(max_length=200, blank=True,
                                     help_text="Catalog prompt for answers; empty: the default rag prompt")
    chunking = models.JSONField(default=dict, blank=True)
    retrieval = models.JSONField(default=dict, blank=True)
    # BM25 corpus statistics, maintained in the same transaction as the chunks they count.
    chunk_count = models.PositiveIntegerField(default=0)
    token_total = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # An overlay (copy-on-write, overlay.py): documents searched together with `overlay_of` as if they were in
    # it, the base never written. Hidden from every list and page; `overlay_owner` says who made it (and sweeps it).
    overlay_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="overlays")
    overlay_owner = models.CharField(max_length=120, blank=True)

    class Meta:
        ordering = ["team__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="rag_collection_team_name"),
            models.UniqueConstraint(fields=["overlay_owner"], condition=~Q(overlay_owner=""),
                                    name="rag_collection_overlay_owner"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("rag:collection", kwargs={"pk": self.pk})

    @property
    def avgdl(self) -> float:
        return self.token_total / self.chunk_count if self.chunk_count else 0.0

    @property
    def hnsw_index_name(self) -> str:
        return f"rag_chunk_hnsw_c{self.pk}"


class DocumentFormat(models.TextChoices):
    TEXT = "txt", "Plain text"
    MARKDOWN = "md", "Markdown"
    HTML = "html", "HTML"
    PDF = "pdf", "PDF"


class DocumentStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    INDEXING = "indexing", "Indexing"
    INDEXED = "indexed", "Indexed"
    FAILED = "failed", "Failed"


class Document(models.Model):
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="documents")
    source_name = models.CharField(max_length=500)
    title = models.CharField(max_length=500, blank=True)
    format = models.CharField(max_length=8, choices=DocumentFormat.choices)
    content = models.BinaryField(editable=False)
    size_bytes = models.PositiveIntegerField(default=0)
    content_hash = models.CharField(max_length=64)
    metadata = models.JSONField(default=dict, blank=True)
    version = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=12, choices=DocumentStatus.choices, default=DocumentStatus.QUEUED)
    error = models.TextField(blank=True)
    job = models.ForeignKey("IndexingJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    text = models.TextField(blank=True)  # the parsed text of the indexed version
    indexed_hash = models.CharField(max_length=64, blank=True)
    indexed_version = models.PositiveIntegerField(null=True, blank=True)
    indexed_at = models.DateTimeField(null=True, blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    pii_findings = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["source_name"]
        constraints = [
            models.UniqueConstraint(fields=["collection", "source_name"], name="rag_document_source_unique"),
            models.CheckConstraint(condition=Q(status__in=DocumentStatus.values), name="rag_document_status"),
        ]
        indexes = [models.Index(fields=["collection", "status"], name="rag_document_status_idx")]

    def __str__(self) -> str:
        return self.title or self.source_name

    def get_absolute_url(self) -> str:
        return reverse("rag:document", kwargs={"pk": self.collection_id, "doc": self.pk})

    @property
    def is_active(self) -> bool:
        return self.status in (DocumentStatus.QUEUED, DocumentStatus.INDEXING)

    @property
    def is_stale(self) -> bool:
        """Its chunks (if any) come from an older version than the content it holds."""
        return self.indexed_hash != self.content_hash


class Chunk(models.Model):
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="+")
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField()
    heading_path = models.TextField(blank=True)  # "Handbook › Leave › Parental leave"
    text = models.TextField()
    char_start = models.PositiveIntegerField(default=0)
    char_end = models.PositiveIntegerField(default=0)
    token_count = models.PositiveIntegerField(default=0)  # estimated model tokens of the text
    bm25_length = models.PositiveIntegerField(default=0)  # lexemes rag_tsvector counts
    metadata = models.JSONField(default=dict, blank=True)
    embedding = VectorField(null=True)  # dimension per collection; see the module docstring

    class Meta:
        ordering = ["document_id", "position"]
        indexes = [
            models.Index(fields=["collection", "document", "position"], name="rag_chunk_doc_pos_idx"),
            GinIndex(fields=["metadata"], name="rag_chunk_metadata_gin", opclasses=["jsonb_path_ops"]),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.position}"


class Posting(models.Model):
    """One term of one chunk: the BM25 inverted index. Written and deleted by services in raw SQL.

    `impact` is the term's BM25 weight in the chunk without idf, at the collection's default k1/b and the
    average length when it was written: the order in which a query reads a term's postings (top-k pruning).
    Scores themselves are always computed from tf and dl with the query's k1/b.
    """

    pk = models.CompositePrimaryKey("chunk_id", "term")
    chunk = models.ForeignKey(Chunk, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    collection_id = models.BigIntegerField()
    term = models.TextField()
    tf = models.PositiveIntegerField()
    dl = models.PositiveIntegerField()  # the chunk's length, denormalised so scoring reads one index
    impact = models.FloatField(default=0.0)

    class Meta:
        indexes = [models.Index(models.F("collection_id"), models.F("term"), models.F("impact").desc(),
                                include=["chunk", "tf", "dl"], name="rag_posting_impact_idx")]

    def __str__(self) -> str:
        return f"{self.term} in chunk {self.chunk_id} (tf {self.tf})"


class TermStat(models.Model):
    """Document frequency of a term in a collection: kept by triggers on rag_posting (migration 0003), in the
    same transaction as the postings, so BM25's idf never reads a count of another snapshot."""

    pk = models.CompositePrimaryKey("collection_id", "term")
    collection_id = models.BigIntegerField()
    term = models.TextField()
    df = models.IntegerField(default=0)

    class Meta:
        db_table = "rag_term_stat"

    def __str__(self) -> str:
        return f"{self.term}: df {self.df} in collection {self.collection_id}"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class IndexingJob(JobRow):
    """One indexing run over the documents assigned to it (`Document.job`). Claimed, fenced, swept."""

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="jobs")
    active_statuses = ACTIVE_JOB_STATUSES
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED)
    documents_failed = models.PositiveIntegerField(default=0)
    chunks_written = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    run_token = models.CharField(max_length=32, blank=True)  # fences a re-queued run from a stale one
    trigger = models.CharField(max_length=40, blank=True)  # upload, import, retry, reindex, sweep
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="rag_job_status_idx")]

    def __str__(self) -> str:
        return f"indexing job {self.pk} ({self.status})"


class RetrievalDataset(models.Model):
    """Queries with relevance judgements (BEIR layout) against a collection's documents, by source name."""

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    split = models.CharField(max_length=40, blank=True)
    query_count = models.PositiveIntegerField(default=0)
    judgement_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["collection", "name"], name="rag_dataset_name")]

    def __str__(self) -> str:
        return self.name


class RetrievalQuery(models.Model):
    dataset = models.ForeignKey(RetrievalDataset, on_delete=models.CASCADE, related_name="queries")
    query_id = models.CharField(max_length=200)
    text = models.TextField()
    # {source_name: relevance grade}, graded as BEIR's qrels (0 = judged not relevant)
    relevant = models.JSONField(default=dict)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["dataset", "query_id"], name="rag_query_unique")]

    def __str__(self) -> str:
        return self.query_id


class RetrievalEvalRun(JobRow):
    dataset = models.ForeignKey(RetrievalDataset, on_delete=models.CASCADE, related_name="runs")
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="+")
    label = models.CharField(max_length=120, blank=True)
    config = models.JSONField(default=dict)  # the RetrievalConfig used, as a dict
    active_statuses = ACTIVE_JOB_STATUSES
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED)
    # {"bm25": {"ndcg@10": …, "recall@10": …, "recall@100": …, "mrr@10": …}, "vector": …, "hybrid": …}
    metrics = models.JSONField(default=dict, blank=True)
    latency = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    run_token = models.CharField(max_length=32, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.label or f"run {self.pk}"


class RetrievalEvalResult(models.Model):
    """One query of a run, per leg: its metrics and where each relevant document ranked (None: missed)."""

    run = models.ForeignKey(RetrievalEvalRun, on_delete=models.CASCADE, related_name="results")
    query = models.ForeignKey(RetrievalQuery, on_delete=models.CASCADE, related_name="+")
    leg = models.CharField(max_length=12)
    ndcg10 = models.FloatField()
    recall10 = models.FloatField()
    recall100 = models.FloatField()
    mrr10 = models.FloatField()
    relevant_ranks = models.JSONField(default=dict)  # {source_name: rank or None}
    top = models.JSONField(default=list)  # the first 10 source names retrieved

    class Meta:
        ordering = ["query_id", "leg"]
        constraints = [models.UniqueConstraint(fields=["run", "query", "leg"], name="rag_result_unique")]

    def __str__(self) -> str:
        return f"{self.leg} result of query {self.query_id} in run {self.run_id}"
