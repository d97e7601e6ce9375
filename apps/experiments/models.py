"""Online experiments: a prompt's live gateway traffic split between arms (versions, labels or models), with
weights, sticky per end user or tenant (ADR 0108); the page compares the arms (ADR 0109)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone


class Status(models.TextChoices):
    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    STOPPED = "stopped", "Stopped"
    KILLED = "killed", "Killed"


LIVE = (Status.RUNNING, Status.PAUSED)
ENDED = (Status.STOPPED, Status.KILLED)


class Unit(models.TextChoices):
    USER = "user", "End user (the OpenAI `user` field, else metadata.end_user)"
    TENANT = "tenant", "Tenant (metadata.tenant or X-Portal-Tenant)"


class Experiment(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="+")
    prompt = models.ForeignKey("prompts.Prompt", on_delete=models.PROTECT, related_name="+")
    use_case_id = models.BigIntegerField(null=True, blank=True)  # the use case it counts for (reviews' link)
    name = models.CharField(max_length=200)
    hypothesis = models.TextField(blank=True)
    unit = models.CharField(max_length=8, choices=Unit.choices, default=Unit.USER)
    control_label = models.CharField(max_length=40, default="production")  # the label whose requests are split
    salt = models.CharField(max_length=32)
    # The test (ADR 0109): mSPRT on the difference in task success, its mixing prior tuned to this effect.
    mde = models.FloatField(default=0.05)
    alpha = models.FloatField(default=0.05)
    min_outcomes = models.PositiveIntegerField(default=100)  # per arm, before any verdict is stated
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DRAFT)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)  # the first start
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.TextField(blank=True)
    result = models.JSONField(null=True, blank=True)  # the comparison as it stood when the experiment ended
    promotion_request_id = models.BigIntegerField(null=True, blank=True)
    # Sample-ratio-mismatch alarm (the beat's chi-square of units per arm against the weights, p < 0.001): the
    # result is untrustworthy until someone who runs the experiment acknowledges it (with a note).
    srm_alarm_at = models.DateTimeField(null=True, blank=True)
    srm_p_value = models.FloatField(null=True, blank=True)
    srm_acknowledged_at = models.DateTimeField(null=True, blank=True)
    srm_acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                            on_delete=models.SET_NULL, related_name="+")
    srm_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["prompt"], condition=Q(status__in=["running", "paused"]),
                                    name="experiment_one_live_per_prompt"),
        ]
        indexes = [models.Index(fields=["use_case_id", "started_at"], name="experiment_use_case_idx")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("experiments:detail", args=[self.pk])

    @property
    def is_live(self) -> bool:
        return self.status in LIVE

    @property
    def is_ended(self) -> bool:
        return self.status in ENDED

    @property
    def srm_open(self) -> bool:
        """An alarm nobody has acknowledged yet: the comparison is untrustworthy."""
        return self.srm_alarm_at is not None and self.srm_acknowledged_at is None


class ExperimentArm(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="arms")
    key = models.SlugField(max_length=40)
    position = models.PositiveSmallIntegerField()  # 0: the control
    weight = models.PositiveSmallIntegerField()  # percent; the arms of an experiment add up to 100
    label = models.CharField(max_length=40, blank=True)
    version_number = models.PositiveIntegerField(null=True, blank=True)
    model = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["experiment", "position"]
        constraints = [models.UniqueConstraint(fields=["experiment", "key"], name="experiment_arm_key_unique")]

    def __str__(self) -> str:
        return f"{self.key} ({self.weight} %)"

    @property
    def is_control(self) -> bool:
        return self.position == 0

    @property
    def target(self) -> str:
        what = f"v{self.version_number}" if self.version_number else f"@{self.label}"
        return f"{what} on {self.model}" if self.model else what
