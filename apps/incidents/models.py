"""Incidents: the record (severity, status, what is affected, times, harm), its timeline, and the mitigations
(switches on live traffic) applied from it. Decisions: ADR 0080; docs/incidents.md.

Reviews sits below incidents, so the affected use cases are a real M2M. What lives in lower apps without a
model of its own here (features, prompt versions, aliases/deployments, collections, tenants) is kept as JSON
lists of names or ids: the record describes the incident, it does not own those things.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class Severity(models.IntegerChoices):
    SEV1 = 1, "Sev1"
    SEV2 = 2, "Sev2"
    SEV3 = 3, "Sev3"
    SEV4 = 4, "Sev4"


PAGING_SEVERITIES = (Severity.SEV1, Severity.SEV2)  # inbox + e-mail to the commander and the owning team


class IncidentType(models.TextChoices):
    INCORRECT_OUTPUTS = "incorrect_outputs", "Incorrect outputs"
    UNSAFE_CONTENT = "unsafe_content", "Unsafe content"
    DATA_EXPOSURE = "data_exposure", "Data exposure"
    RUNAWAY_COST = "runaway_cost", "Runaway cost"
    PROVIDER_OUTAGE = "provider_outage", "Provider outage"
    OTHER = "other", "Other"


class Status(models.TextChoices):
    OPEN = "open", "Open"
    INVESTIGATING = "investigating", "Investigating"
    MITIGATED = "mitigated", "Mitigated"
    RESOLVED = "resolved", "Resolved"
    REVIEW_DONE = "review_done", "Review done"


class SeverityDefinition(models.Model):
    """What each level means, written by admins (Django admin); shown on the declare form and the incident."""

    level = models.PositiveSmallIntegerField(choices=Severity.choices, unique=True)
    summary = models.CharField(max_length=200)
    definition = models.TextField(blank=True)
    response = models.TextField(blank=True, help_text="Who is paged and how fast a response is expected.")

    class Meta:
        ordering = ["level"]
        verbose_name = "severity definition"

    def __str__(self) -> str:
        return f"{self.get_level_display()}: {self.summary}"


class Incident(models.Model):
    title = models.CharField(max_length=200)
    kind = models.CharField("type", max_length=32, choices=IncidentType.choices)
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    summary = models.TextField(blank=True)
    # The owning team: whose engineers run the response and are paged for Sev1/Sev2. `teams` are the others.
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="incidents")
    teams = models.ManyToManyField("accounts.Team", blank=True, related_name="affected_by_incidents")
    commander = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="commanded_incidents")
    responders = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="incidents_responding")
    use_cases = models.ManyToManyField("reviews.UseCase", blank=True, related_name="incidents")
    features = models.JSONField(default=list, blank=True)  # feature names (as on gateway keys and usage)
    prompt_versions = models.JSONField(default=list, blank=True)  # "namespace/name@v3"
    deployments = models.JSONField(default=list, blank=True)  # model aliases or deployments
    collections = models.JSONField(default=list, blank=True)  # RAG collection ids
    tenants = models.JSONField(default=list, blank=True)
    detected_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    mitigated_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    customer_impact = models.TextField(blank=True)
    harm_categories = models.JSONField(default=list, blank=True)
    affected_groups = models.JSONField(default=list, blank=True)
    near_miss = models.BooleanField(default=False)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-detected_at", "-id"]
        indexes = [models.Index(fields=["status", "severity"], name="incident_status_sev_idx")]

    def __str__(self) -> str:
        return f"{self.reference} {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("incidents:detail", args=[self.pk])

    @property
    def reference(self) -> str:
        return f"INC-{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status not in (Status.RESOLVED, Status.REVIEW_DONE)

    @property
    def unacknowledged(self) -> bool:
        return self.acknowledged_at is None and self.is_open


class EventKind(models.TextChoices):
    NOTE = "note", "Note"
    DECLARED = "declared", "Declared"
    STATUS = "status", "Status change"
    UPDATE = "update", "Update"
    ACK = "ack", "Acknowledged"
    MITIGATION = "mitigation", "Mitigation applied"
    MITIGATION_UNDONE = "mitigation_undone", "Mitigation undone"
    SYSTEM = "system", "System event"


class TimelineEvent(models.Model):
    """One line of the incident's timeline: a person's note or a system event (status, mitigation, ...)."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="timeline")
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    text = models.TextField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_label = models.CharField(max_length=150, blank=True)  # "system", a token's label, or the username
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["incident", "at"], name="incident_timeline_idx")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.kind}: {self.text[:60]}"

    @property
    def is_system(self) -> bool:
        return self.kind != EventKind.NOTE


class MitigationKind(models.TextChoices):
    FEATURE_OFF = "feature_off", "Feature off"
    RATE_LIMIT = "rate_limit", "Rate limit"
    # apps/incidents/switches.py (ADR 0081), same row shape:
    MODEL_FALLBACK = "model_fallback", "Model fallback"
    RETRIEVAL_DISABLED = "retrieval_disabled", "Retrieval disabled"
    STRICTER_FILTERS = "stricter_filters", "Stricter filters"
    PROMPT_ROLLBACK = "prompt_rollback", "Prompt rollback"


class Mitigation(models.Model):
    """A switch applied from an incident: `kind` + `target` (what it acts on) + `params` (how), reversible.

    target: {"scope": "key", "key_id": 5} | {"scope": "feature", "team_id": 2, "feature": "support-bot"} |
            {"scope": "use_case", "use_case_id": 7}   (later kinds add their own scopes: alias, collection, ...)
    params: feature_off {"message"}; rate_limit {"requests_per_minute", "requests_per_day", "before": {...}}
    Active while `undone_at` is empty. `expires_at`: feature off sends a reminder; a rate limit is restored.
    """

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="mitigations")
    kind = models.CharField(max_length=32, choices=MitigationKind.choices)
    target = models.JSONField(default=dict)
    target_label = models.CharField(max_length=300)
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="+")  # the target's team
    params = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    applied_at = models.DateTimeField(default=timezone.now)
    applied_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    expires_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")

    class Meta:
        ordering = ["-applied_at", "-id"]
        indexes = [models.Index(fields=["kind"], name="mitigation_active_idx",
                                condition=models.Q(undone_at__isnull=True))]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.target_label}"

    @property
    def is_active(self) -> bool:
        return self.undone_at is None

    @property
    def is_overdue(self) -> bool:
        return self.is_active and self.expires_at is not None and self.expires_at <= timezone.now()
