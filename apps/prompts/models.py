"""The prompt catalog: prompts, immutable versions, labels with their history, promotion requests and gates,
team policy, webhooks and playground runs.

Versions and label history are append-only: `save()` refuses updates and a database trigger refuses UPDATE
(migration 0002), whoever connects.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

# A name is one or more lower-case segments separated by "/": support/triage-summary, shared/tone.
# Segments start with a letter or digit, so "/-/" can separate the name from sub-pages in URLs, and a few
# words are reserved as segments so `/api/v1/prompts/<name>/resolve` is never ambiguous.
NAME_SEGMENT = r"[a-z0-9][a-z0-9._-]*"
RESERVED_SEGMENTS = ("resolve", "render", "versions", "labels", "promotions", "diff", "history")
NAME_MAX_LENGTH = 200
NAME_MAX_SEGMENTS = 6
_NAME_RE = re.compile(rf"^{NAME_SEGMENT}(?:/{NAME_SEGMENT})*$")
LABEL_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")

PRODUCTION = "production"
STAGING = "staging"
LATEST = "latest"


def validate_prompt_name(name: str) -> None:
    if not name:
        raise ValidationError("Give the prompt a name, e.g. support/triage-summary.")
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError(f"Keep the name under {NAME_MAX_LENGTH} characters.")
    if not _NAME_RE.match(name):
        raise ValidationError(
            "Use lower-case letters, digits, '.', '_' and '-' in segments separated by '/', each segment "
            "starting with a letter or digit (e.g. support/triage-summary)."
        )
    segments = name.split("/")
    if len(segments) > NAME_MAX_SEGMENTS:
        raise ValidationError(f"Use at most {NAME_MAX_SEGMENTS} segments.")
    reserved = [s for s in segments if s in RESERVED_SEGMENTS]
    if reserved:
        raise ValidationError(f"{reserved[0]!r} is reserved and cannot be a segment of a prompt name.")


def validate_label_name(name: str) -> None:
    if not LABEL_RE.match(name or ""):
        raise ValidationError("A label is 1-40 lower-case letters, digits, '-' or '_', starting with a letter "
                              "or digit (e.g. staging, canary-eu).")


class PromptKind(models.TextChoices):
    TEXT = "text", "Text"
    CHAT = "chat", "Chat (messages)"


class Prompt(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="prompts")
    name = models.CharField(max_length=NAME_MAX_LENGTH, unique=True, validators=[validate_prompt_name])
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=8, choices=PromptKind.choices, default=PromptKind.TEXT)
    tags = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    # "Last change": a new version, a label move or an edit of the description.
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by_label = models.CharField(max_length=200, blank=True)
    latest_version_number = models.PositiveIntegerField(default=0)
    # name (A), description and tags (B), latest template text (C); maintained by services.
    search_vector = SearchVectorField(null=True, editable=False)

    class Meta:
        ordering = ["name"]
        indexes = [
            GinIndex(fields=["search_vector"], name="prompt_search_idx"),
            GinIndex(fields=["tags"], name="prompt_tags_idx"),
            models.Index(fields=["-updated_at"], name="prompt_updated_idx"),
            models.Index(fields=["team", "name"], name="prompt_team_name_idx"),
        ]

    def __str__(self) -> str:
        return self.name


class PromptVersion(models.Model):
    """One immutable version of a prompt. Identical content (same hash) is never saved twice."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    template = models.TextField(blank=True, help_text="The Jinja2 template (text prompts)")
    messages = models.JSONField(default=list, blank=True, help_text="[{role, content}] (chat prompts)")
    variables = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    variables_schema = models.JSONField(null=True, blank=True)
    config = models.JSONField(default=dict, blank=True)  # model, temperature, max_tokens, response_format, tools
    commit_message = models.CharField(max_length=500, blank=True)
    # Plain ids, no constraint: deleting a user or a token must never try to UPDATE an immutable row.
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING,
                               db_constraint=False, related_name="+")
    author_token = models.ForeignKey("accounts.ApiToken", null=True, blank=True, on_delete=models.DO_NOTHING,
                                     db_constraint=False, related_name="+")
    author_label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    content_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["prompt", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "number"], name="prompt_version_unique_number"),
            models.UniqueConstraint(fields=["prompt", "content_hash"], name="prompt_version_unique_content"),
            models.CheckConstraint(condition=Q(number__gte=1), name="prompt_version_number_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.prompt.name} v{self.number}" if self.prompt_id else f"v{self.number}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValidationError("Prompt versions are immutable: create a new version instead.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    @property
    def team_id(self):  # for permission checks: a version belongs to its prompt's team
        return self.prompt.team_id

    @property
    def short_hash(self) -> str:
        return self.content_hash[:10]

    @property
    def text_for_search(self) -> str:
        if self.messages:
            return "\n".join(str(m.get("content", "")) for m in self.messages)
        return self.template


class PromptReference(models.Model):
    """An `include_prompt` in a version: the edge of the reference graph (what uses what)."""

    from_version = models.ForeignKey(PromptVersion, on_delete=models.CASCADE, related_name="references")
    to_prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="referenced_by")
    label = models.CharField(max_length=40, blank=True)
    version_number = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["from_version", "to_prompt", "label", "version_number"],
                                    name="prompt_reference_unique", nulls_distinct=False),
        ]
        indexes = [models.Index(fields=["to_prompt"], name="prompt_ref_to_idx")]

    def __str__(self) -> str:
        return f"{self.from_version_id} includes {self.to_prompt_id} ({self.selector})"

    @property
    def selector(self) -> str:
        return f"v{self.version_number}" if self.version_number else self.label


class Label(models.Model):
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=40, validators=[validate_label_name])
    version = models.ForeignKey(PromptVersion, on_delete=models.CASCADE, related_name="labels")
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by_label = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["prompt", "name"]
        constraints = [models.UniqueConstraint(fields=["prompt", "name"], name="label_unique_per_prompt")]
        indexes = [models.Index(fields=["name", "prompt"], name="label_name_prompt_idx")]

    def __str__(self) -> str:
        return f"{self.prompt_id}:{self.name}"


class LabelEvent(models.Model):
    """One move of a label: who, when, from, to and why. Append-only (trigger in migration 0002)."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="label_events")
    label = models.CharField(max_length=40)
    from_version = models.ForeignKey(PromptVersion, null=True, blank=True, on_delete=models.CASCADE,
                                     related_name="+")
    to_version = models.ForeignKey(PromptVersion, on_delete=models.CASCADE, related_name="+")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING,
                              db_constraint=False, related_name="+")
    actor_token = models.ForeignKey("accounts.ApiToken", null=True, blank=True, on_delete=models.DO_NOTHING,
                                    db_constraint=False, related_name="+")
    actor_label = models.CharField(max_length=200)
    reason = models.TextField(blank=True)
    promotion = models.ForeignKey("PromotionRequest", null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="label_events")
    occurred_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["prompt", "label", "-occurred_at"], name="label_event_time_idx")]

    def __str__(self) -> str:
        return f"{self.label}: {self.from_version_id} → {self.to_version_id} by {self.actor_label}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValidationError("Label history is append-only.")
        super().save(*args, **kwargs)


class PromptPolicy(models.Model):
    """A team's release rules for its prompts. Missing row = the defaults below."""

    team = models.OneToOneField("accounts.Team", on_delete=models.CASCADE, related_name="prompt_policy")
    approvals_required = models.PositiveSmallIntegerField(default=1)
    not_configured_blocks = models.BooleanField(
        default=False, help_text="A gate check whose app is not installed yet blocks promotion")
    lint_warnings_block = models.BooleanField(default=False, help_text="Lint warnings block, not only errors")
    # {check key: true|false}: make a registered check blocking or advisory for this team.
    check_overrides = models.JSONField(default=dict, blank=True)
    protected_labels = ArrayField(models.CharField(max_length=40), default=list, blank=True,
                                  help_text="Labels besides production that move only by promotion")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "prompt policies"
        constraints = [
            models.CheckConstraint(condition=Q(approvals_required__gte=1) & Q(approvals_required__lte=10),
                                   name="prompt_policy_approvals_range"),
        ]

    def __str__(self) -> str:
        return f"policy of team {self.team_id}"

    def is_protected(self, label: str) -> bool:
        return label == PRODUCTION or label in (self.protected_labels or [])


class PromotionKind(models.TextChoices):
    PROMOTION = "promotion", "Promotion"
    ROLLBACK = "rollback", "Rollback"


class PromotionStatus(models.TextChoices):
    OPEN = "open", "Open"
    APPLIED = "applied", "Applied"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


class PromotionRequest(models.Model):
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="promotion_requests")
    label = models.CharField(max_length=40, default=PRODUCTION)
    from_version = models.ForeignKey(PromptVersion, null=True, blank=True, on_delete=models.CASCADE,
                                     related_name="+")
    to_version = models.ForeignKey(PromptVersion, on_delete=models.CASCADE, related_name="promotion_requests")
    kind = models.CharField(max_length=12, choices=PromotionKind.choices, default=PromotionKind.PROMOTION)
    status = models.CharField(max_length=12, choices=PromotionStatus.choices, default=PromotionStatus.OPEN)
    reason = models.TextField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    requested_by_token = models.ForeignKey("accounts.ApiToken", null=True, blank=True, on_delete=models.SET_NULL,
                                           related_name="+")
    requester_label = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by_label = models.CharField(max_length=200, blank=True)
    close_comment = models.TextField(blank=True)
    expedited = models.BooleanField(default=False)
    expedite_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "label"], condition=Q(status="open"),
                                    name="promotion_one_open_per_label"),
        ]
        indexes = [models.Index(fields=["status", "-created_at"], name="promotion_status_idx")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.label} → v{self.to_version.number}" if self.to_version_id else f"#{self.pk}"

    @property
    def team_id(self):
        return self.prompt.team_id

    @property
    def is_open(self) -> bool:
        return self.status == PromotionStatus.OPEN


class Decision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class PromotionApproval(models.Model):
    request = models.ForeignKey(PromotionRequest, on_delete=models.CASCADE, related_name="approvals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["request", "user"], name="promotion_approval_unique")]

    def __str__(self) -> str:
        return f"{self.decision} of request {self.request_id} by {self.user_id}"


class CheckStatus(models.TextChoices):
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    NOT_CONFIGURED = "not_configured", "Not configured"
    ERROR = "error", "Error"


class GateCheckResult(models.Model):
    """A gate check's result at one moment; every run is kept, the page shows the latest run."""

    request = models.ForeignKey(PromotionRequest, on_delete=models.CASCADE, related_name="check_results")
    run = models.PositiveIntegerField()
    key = models.CharField(max_length=40)
    label = models.CharField(max_length=120)
    status = models.CharField(max_length=16, choices=CheckStatus.choices)
    blocking = models.BooleanField()
    summary = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["request", "-run", "id"]
        indexes = [models.Index(fields=["request", "-run"], name="gate_result_run_idx")]

    def __str__(self) -> str:
        return f"{self.key}: {self.status}"

    @property
    def blocks(self) -> bool:
        return self.blocking and self.status != CheckStatus.PASSED


class WebhookEvent(models.TextChoices):
    VERSION_CREATED = "version.created", "Version created"
    LABEL_MOVED = "label.moved", "Label moved"


class Webhook(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="prompt_webhooks")
    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    secret_encrypted = models.TextField(editable=False)
    events = ArrayField(models.CharField(max_length=32, choices=WebhookEvent.choices), default=list)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["team", "url"]

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    RETRYING = "retrying", "Retrying"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=32, choices=WebhookEvent.choices)
    payload = models.JSONField()
    status = models.CharField(max_length=12, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["webhook", "-created_at"], name="webhook_delivery_idx")]

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook_id}: {self.status}"


class PlaygroundRun(models.Model):
    """One model call from the playground: the inputs, the output and what it cost."""

    version = models.ForeignKey(PromptVersion, on_delete=models.CASCADE, related_name="playground_runs")
    batch = models.UUIDField(db_index=True)  # runs started together are shown side by side
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    inputs = models.JSONField(default=dict)
    model = models.CharField(max_length=120)
    rendered = models.JSONField(default=list)  # the messages sent
    output = models.TextField(blank=True)
    status = models.CharField(max_length=8, default="ok")
    error = models.CharField(max_length=500, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "id"]

    def __str__(self) -> str:
        return f"run {self.pk} of version {self.version_id} on {self.model}"

    @property
    def team_id(self):
        return self.version.prompt.team_id
