"""The usage ledger and the price catalog. Costs knows feature apps only by ids and names on each event."""

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Price(models.Model):
    """What one model costs per million tokens during [valid_from, valid_to).

    Ranges of one model never overlap: a trigger refuses it (migration 0002; pgserver has no btree_gist).
    """

    model_name = models.CharField(max_length=200, help_text="As providers report it, e.g. gpt-4o-mini")
    provider = models.CharField(max_length=50, blank=True, help_text="Optional: openai, azure, anthropic…")
    input_per_mtok = models.DecimalField(max_digits=14, decimal_places=6)
    output_per_mtok = models.DecimalField(max_digits=14, decimal_places=6)
    cached_input_per_mtok = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    reasoning_per_mtok = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model_name", "-valid_from"]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gt=models.F("valid_from")),
                name="price_valid_range",
            ),
            models.CheckConstraint(
                condition=Q(input_per_mtok__gte=0) & Q(output_per_mtok__gte=0),
                name="price_not_negative",
            ),
        ]
        indexes = [models.Index(fields=["model_name", "valid_from"], name="price_model_from_idx")]

    def __str__(self) -> str:
        return f"{self.model_name} from {self.valid_from:%Y-%m-%d}"


class Source(models.TextChoices):
    PLAYGROUND = "playground"
    EVAL = "eval"
    RAG = "rag"
    API = "api"
    GATEWAY = "gateway"


class Operation(models.TextChoices):
    CHAT = "chat"
    EMBEDDING = "embedding"


class CallStatus(models.TextChoices):
    OK = "ok"
    ERROR = "error"
    REFUSED = "refused"  # refused before the call (budget cap, kill switch)


class Outcome(models.TextChoices):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


class UsageEvent(models.Model):
    """One model call. Never holds prompt or output text. `cost` is NULL when no price applied (unpriced)."""

    occurred_at = models.DateTimeField(default=timezone.now)
    request_id = models.CharField(max_length=100, unique=True)  # idempotency key
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.DO_NOTHING,
                             db_constraint=False, related_name="+")
    feature = models.CharField(max_length=120, blank=True)
    use_case_id = models.BigIntegerField(null=True, blank=True)
    tenant = models.CharField(max_length=120, blank=True)
    user_id = models.BigIntegerField(null=True, blank=True)
    api_token_id = models.BigIntegerField(null=True, blank=True)
    provider = models.CharField(max_length=50, blank=True)
    model = models.CharField(max_length=200)
    operation = models.CharField(max_length=16, choices=Operation.choices, default=Operation.CHAT)
    prompt_name = models.CharField(max_length=200, blank=True)
    prompt_version = models.PositiveIntegerField(null=True, blank=True)
    collection_id = models.BigIntegerField(null=True, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cached_input_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=16, decimal_places=8, null=True, blank=True)
    price = models.ForeignKey(Price, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    latency_ms = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=CallStatus.choices, default=CallStatus.OK)
    error_type = models.CharField(max_length=80, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.UNKNOWN)
    ingested_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [
            # Append-mostly and time-ordered: a BRIN index is tiny and lets range scans skip blocks.
            BrinIndex(fields=["occurred_at"], name="usage_time_brin", pages_per_range=32),
            models.Index(fields=["team", "occurred_at"], name="usage_team_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.model} {self.input_tokens}+{self.output_tokens} tok @ {self.occurred_at:%Y-%m-%d %H:%M}"

    @property
    def is_unpriced(self) -> bool:
        return self.cost is None and self.status == CallStatus.OK


ZERO = Decimal("0")
