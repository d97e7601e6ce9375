"""Evals: versioned golden datasets, versioned evaluator definitions, eval runs with one result row per
(item, repetition), release gates per prompt, judge calibration labels and production feedback.

Immutability: dataset revisions, dataset items and evaluator definitions are never updated — an edit makes a
new revision (items carry the revision range they belong to: `added_in` <= N < `removed_in`) or a new
evaluator version. Runs pin the dataset revision and the evaluator definitions they used.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.core.models import JobRow


class ItemSource(models.TextChoices):
    MANUAL = "manual", "Manual"
    IMPORT = "import", "Import"
    PLAYGROUND = "playground", "Playground"
    FEEDBACK = "feedback", "Production feedback"
    GATEWAY = "gateway", "Gateway request"
    SEED = "seed", "Seeded"


class Dataset(models.Model):
    """A golden set. `team` owns it; a `shared` set (e.g. the seeded adversarial set) is visible to every
    signed-in person and any team may attach it to its gates; a shared set without a team is the portal's."""

    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.PROTECT,
                             related_name="eval_datasets")
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    shared = models.BooleanField(default=False)
    input_names = ArrayField(models.CharField(max_length=100), default=list, blank=True,
                             help_text="Variables every item must give (optional)")
    latest_revision = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def items_at(self, revision: int | None = None):
        return DatasetItem.objects.at_revision(self.pk, revision or self.latest_revision)


class DatasetRevision(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    message = models.CharField(max_length=500, blank=True)
    source = models.CharField(max_length=16, choices=ItemSource.choices, default=ItemSource.MANUAL)
    item_count = models.PositiveIntegerField(default=0)
    added = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    created_by_label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["dataset", "-number"]
        constraints = [models.UniqueConstraint(fields=["dataset", "number"], name="eval_revision_unique")]

    def __str__(self) -> str:
        return f"{self.dataset_id} r{self.number}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValidationError("Dataset revisions are immutable.")
        super().save(*args, **kwargs)


class ItemQuerySet(models.QuerySet):
    def at_revision(self, dataset_id: int, revision: int):
        return self.filter(Q(dataset_id=dataset_id, added_in__lte=revision)
                           & (Q(removed_in__isnull=True) | Q(removed_in__gt=revision)))


class DatasetItem(models.Model):
    """One item's content as of the revisions [added_in, removed_in). Editing = remove + add under the same key."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    key = models.CharField(max_length=100)  # the logical item, stable across edits
    added_in = models.PositiveIntegerField()
    removed_in = models.PositiveIntegerField(null=True, blank=True)
    position = models.BigIntegerField(default=0)
    inputs = models.JSONField(default=dict)
    expected = models.TextField(null=True, blank=True)
    contexts = models.JSONField(default=list, blank=True)
    tags = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    source = models.CharField(max_length=16, choices=ItemSource.choices, default=ItemSource.MANUAL)
    source_ref = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ItemQuerySet.as_manager()

    class Meta:
        ordering = ["dataset", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "key", "added_in"], name="eval_item_key_revision"),
        ]
        indexes = [
            models.Index(fields=["dataset", "added_in", "position"], name="eval_item_rev_idx"),
            models.Index(fields=["dataset", "key"], name="eval_item_key_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.key} (r{self.added_in}…)"


class EvaluatorDefinition(models.Model):
    """One version of a named evaluator: kind (from the registry), parameters and pass threshold. Immutable."""

    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.PROTECT,
                             related_name="eval_evaluators")
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=60)
    params = models.JSONField(default=dict, blank=True)
    threshold = models.FloatField(default=0.5)
    version = models.PositiveIntegerField(default=1)
    description = models.TextField(blank=True)
    created_by_label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name", "version"], name="eval_evaluator_version_unique",
                                    nulls_distinct=False),
            models.CheckConstraint(condition=Q(threshold__gte=0) & Q(threshold__lte=1),
                                   name="eval_evaluator_threshold_range"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValidationError("Evaluator definitions are immutable: save a new version instead.")
        super().save(*args, **kwargs)

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    FINALIZING = "finalizing", "Finalizing"
    FINISHED = "finished", "Finished"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.FINALIZING)


class EvalRun(JobRow):
    """A target × dataset revision × model config × evaluator versions × repetitions, and its outcome."""

    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="eval_runs")
    name = models.CharField(max_length=200, blank=True)
    target_kind = models.CharField(max_length=40, default="prompt_version")
    target_ref = models.JSONField(default=dict)
    target_label = models.CharField(max_length=300)
    target_fingerprint = models.CharField(max_length=64, blank=True)  # prompt version: its content hash
    prompt = models.ForeignKey("prompts.Prompt", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="eval_runs")
    prompt_version = models.ForeignKey("prompts.PromptVersion", null=True, blank=True,
                                       on_delete=models.SET_NULL, related_name="eval_runs")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="runs")
    dataset_revision = models.PositiveIntegerField()
    input_map = models.JSONField(default=dict, blank=True)  # {prompt variable: item input key}
    model = models.CharField(max_length=120)
    model_config = models.JSONField(default=dict)
    config_hash = models.CharField(max_length=64)
    evaluators = models.ManyToManyField(EvaluatorDefinition, related_name="runs")
    evaluator_signature = models.CharField(max_length=64)
    repetitions = models.PositiveSmallIntegerField(default=1)
    concurrency = models.PositiveSmallIntegerField(default=8)
    gate = models.ForeignKey("EvalGate", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    active_statuses = ACTIVE_STATUSES
    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.QUEUED)
    errors_count = models.PositiveIntegerField(default=0)
    spend = models.DecimalField(max_digits=16, decimal_places=8, default=0)
    unpriced_calls = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_by_label = models.CharField(max_length=200, blank=True)
    last_progress_at = models.DateTimeField(null=True, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    pass_rate = models.FloatField(null=True, blank=True)
    mean_score = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["team", "-created_at"], name="eval_run_team_idx"),
            models.Index(fields=["status", "last_progress_at"], name="eval_run_status_idx"),
            models.Index(fields=["prompt_version", "dataset", "dataset_revision", "status"],
                         name="eval_run_match_idx"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk}: {self.target_label} on {self.dataset_id} r{self.dataset_revision}"


class UnitStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    ERROR = "error", "Error"


class EvalResult(models.Model):
    """One (item, repetition) of a run: claimed by one worker at a time, written once (unique)."""

    run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="results")
    item = models.ForeignKey(DatasetItem, on_delete=models.PROTECT, related_name="results")
    repetition = models.PositiveSmallIntegerField(default=0)
    position = models.BigIntegerField(default=0)
    status = models.CharField(max_length=8, choices=UnitStatus.choices, default=UnitStatus.PENDING)
    claim_token = models.CharField(max_length=32, blank=True)
    claimed_by = models.CharField(max_length=200, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    output = models.TextField(blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=16, decimal_places=8, null=True, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    request_id = models.CharField(max_length=100, blank=True)
    scores = models.JSONField(default=dict, blank=True)  # {definition id: {score, passed, reason}}
    score = models.FloatField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "position", "repetition"]
        constraints = [
            models.UniqueConstraint(fields=["run", "item", "repetition"], name="eval_result_unique_unit"),
        ]
        indexes = [
            models.Index(fields=["run", "status", "id"], name="eval_result_claim_idx"),
            models.Index(fields=["run", "position", "repetition"], name="eval_result_order_idx"),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} item {self.item_id} #{self.repetition}: {self.status}"


class EvalGate(models.Model):
    """A prompt's release gate: what a version must pass before production. Changes are versioned and audited."""

    prompt = models.OneToOneField("prompts.Prompt", on_delete=models.CASCADE, related_name="eval_gate")
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="eval_gates")
    version = models.PositiveIntegerField(default=1)
    datasets = models.JSONField(default=list)  # [{"dataset": id, "revision": n, "input_map": {...}}]
    evaluators = models.ManyToManyField(EvaluatorDefinition, related_name="gates")
    thresholds = models.JSONField(default=dict, blank=True)  # {definition id: minimum pass rate}
    min_pass_rate = models.FloatField(default=0.9)
    max_regression = models.FloatField(default=0.05)
    model = models.CharField(max_length=120, blank=True, help_text="Empty: the version's configured model")
    repetitions = models.PositiveSmallIntegerField(default=1)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by_label = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["prompt__name"]
        constraints = [
            models.CheckConstraint(condition=Q(min_pass_rate__gte=0) & Q(min_pass_rate__lte=1),
                                   name="eval_gate_min_pass_rate_range"),
            models.CheckConstraint(condition=Q(max_regression__gte=0) & Q(max_regression__lte=1),
                                   name="eval_gate_max_regression_range"),
        ]

    def __str__(self) -> str:
        return f"gate of {self.prompt_id} v{self.version}"


class EvalGateChange(models.Model):
    """The gate's history: each version's settings, who changed it and why. Append-only."""

    gate = models.ForeignKey(EvalGate, on_delete=models.CASCADE, related_name="changes")
    version = models.PositiveIntegerField()
    snapshot = models.JSONField(default=dict)
    changes = models.JSONField(default=dict)
    reason = models.TextField(blank=True)
    actor_label = models.CharField(max_length=200)
    occurred_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["gate", "-version"]
        constraints = [models.UniqueConstraint(fields=["gate", "version"], name="eval_gate_change_unique")]

    def __str__(self) -> str:
        return f"gate {self.gate_id} v{self.version} by {self.actor_label}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValidationError("Gate history is append-only.")
        super().save(*args, **kwargs)


class JudgeLabel(models.Model):
    """A human's pass/fail on one output, to calibrate an LLM judge against (Cohen's kappa)."""

    evaluator = models.ForeignKey(EvaluatorDefinition, on_delete=models.CASCADE, related_name="judge_labels")
    result = models.ForeignKey(EvalResult, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    inputs = models.JSONField(default=dict, blank=True)
    output = models.TextField()
    expected = models.TextField(null=True, blank=True)
    human_passed = models.BooleanField()
    judge_passed = models.BooleanField(null=True, blank=True)
    judge_score = models.FloatField(null=True, blank=True)
    judge_reason = models.TextField(blank=True)
    labelled_by_label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["evaluator", "id"]

    def __str__(self) -> str:
        return f"label {self.pk} of {self.evaluator_id}: {'pass' if self.human_passed else 'fail'}"


class Thumbs(models.TextChoices):
    UP = "up", "👍"
    DOWN = "down", "👎"


class Feedback(models.Model):
    """Online feedback on one production call (by request id or trace id)."""

    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="eval_feedback")
    request_id = models.CharField(max_length=100, blank=True, db_index=True)
    trace_id = models.CharField(max_length=100, blank=True, db_index=True)
    score = models.FloatField(null=True, blank=True)
    thumbs = models.CharField(max_length=4, choices=Thumbs.choices, blank=True)
    comment = models.TextField(blank=True)
    correction = models.TextField(blank=True)
    inputs = models.JSONField(null=True, blank=True)
    output = models.TextField(blank=True)
    prompt_name = models.CharField(max_length=200, blank=True)
    prompt_version = models.PositiveIntegerField(null=True, blank=True)
    use_case_id = models.BigIntegerField(null=True, blank=True)
    success = models.BooleanField(null=True, blank=True)
    # The product's own groundedness score of the answer (0-1), when it scores its answers; incidents fold it
    # into the use case's live groundedness (ADR 0121).
    groundedness = models.FloatField(null=True, blank=True)
    overridden = models.BooleanField(default=False)
    dataset_item = models.ForeignKey(DatasetItem, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    created_by_label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["prompt_name", "prompt_version"], name="eval_feedback_prompt_idx")]

    def __str__(self) -> str:
        return f"feedback on {self.request_id or self.trace_id}"


# a product's groundedness score sent alone (no thumbs, score nor correction): not an outcome, not an override
GROUNDEDNESS_ONLY = Q(success__isnull=True, groundedness__isnull=False)
