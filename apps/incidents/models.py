"""Incidents: the record (severity, status, what is affected, times, harm), its timeline, and the mitigations
(switches on live traffic) applied from it. Decisions: ADR 0080; docs/incidents.md.

Reviews sits below incidents, so the affected use cases are a real M2M. What lives in lower apps without a
model of its own here (features, prompt versions, aliases/deployments, collections, tenants) is kept as JSON
lists of names or ids: the record describes the incident, it does not own those things.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from django.utils import timezone

from apps.prompts.models import DeliveryStatus  # the states of a signed webhook delivery (prompts' webhooks)


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


# -- after the incident: the review, its root causes and action items (issue #15; ADR 0084) ----------------------
class RunbookFollowed(models.TextChoices):
    YES = "yes", "Yes"
    PARTLY = "partly", "Partly"
    NO = "no", "No"
    NONE = "none", "There was no runbook"


class ReleaseKind(models.TextChoices):
    PROMPT_VERSION = "prompt_version", "Prompt version promoted to production"
    MODEL_CHANGE = "model_change", "Model or deployment change"
    DEPLOY = "deploy", "Code or configuration deploy"
    DATA = "data", "Data or index change"


class PostIncidentReview(models.Model):
    """The blameless review of one incident. Editable until signed off; signing it off moves the incident to
    "review done" (a reopen makes it editable again)."""

    incident = models.OneToOneField(Incident, on_delete=models.CASCADE, related_name="review")
    summary = models.TextField(blank=True)
    impact = models.TextField(blank=True)
    contributing_factors = models.JSONField(default=list, blank=True)
    went_well = models.TextField(blank=True)
    went_badly = models.TextField(blank=True)
    runbook_followed = models.CharField(max_length=8, choices=RunbookFollowed.choices, blank=True)
    runbook_changes = models.TextField(blank=True)
    # The release that caused it (if one did): a regression that escaped the release gates.
    regression_escape = models.BooleanField(default=False)
    release_kind = models.CharField(max_length=20, choices=ReleaseKind.choices, blank=True)
    release_ref = models.CharField(max_length=200, blank=True)  # "support/triage@v7", a deploy id, ...
    released_at = models.DateTimeField(null=True, blank=True)
    signed_off_at = models.DateTimeField(null=True, blank=True)
    signed_off_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        indexes = [models.Index(fields=["regression_escape"], name="incident_review_escape_idx",
                                condition=models.Q(regression_escape=True))]

    def __str__(self) -> str:
        return f"review of INC-{self.incident_id}"


class CauseCategory(models.TextChoices):
    MODEL = "model", "Model"
    PROMPT = "prompt", "Prompt"
    DATA = "data", "Data"
    RETRIEVAL = "retrieval", "Retrieval"
    PROVIDER = "provider", "Provider"
    GUARDRAILS = "guardrails", "Guardrails / filters"
    CODE_CONFIG = "code_config", "Code or configuration"
    CAPACITY = "capacity", "Capacity or cost controls"
    PROCESS = "process", "Process (socio-technical)"
    PEOPLE = "people", "People / training (socio-technical)"
    COMMUNICATION = "communication", "Communication / ownership (socio-technical)"
    MONITORING = "monitoring", "Monitoring gap (socio-technical)"


SOCIO_TECHNICAL = (CauseCategory.PROCESS, CauseCategory.PEOPLE, CauseCategory.COMMUNICATION,
                   CauseCategory.MONITORING)


class RootCause(models.Model):
    review = models.ForeignKey(PostIncidentReview, on_delete=models.CASCADE, related_name="root_causes")
    category = models.CharField(max_length=20, choices=CauseCategory.choices)
    description = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_category_display()}: {self.description[:60]}"

    @property
    def socio_technical(self) -> bool:
        return self.category in SOCIO_TECHNICAL


class ActionStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_PROGRESS = "in_progress", "In progress"
    DONE = "done", "Done"
    WONT_DO = "wont_do", "Won't do"


ACTION_OPEN_STATUSES = (ActionStatus.OPEN, ActionStatus.IN_PROGRESS)


class ActionItem(models.Model):
    """A follow-up of the review with one owner and a due date; its owner is reminded when it falls due."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="action_items")
    title = models.CharField(max_length=300)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="incident_actions")
    due_date = models.DateField()
    status = models.CharField(max_length=12, choices=ActionStatus.choices, default=ActionStatus.OPEN)
    reminded_for = models.DateField(null=True, blank=True)  # the due date a reminder was sent for
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        ordering = ["due_date", "id"]
        indexes = [models.Index(fields=["due_date"], name="incident_action_due_idx",
                                condition=models.Q(status__in=["open", "in_progress"]))]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.status in ACTION_OPEN_STATUSES

    @property
    def is_overdue(self) -> bool:
        return self.is_open and self.due_date < timezone.localdate()


# -- runbooks (ADR 0085) --------------------------------------------------------------------------------------
class Runbook(models.Model):
    """Markdown: what to do for an incident type (`use_case` empty), or for that type in one use case (the team's
    own, shown first). Rendered through apps/core/markdown.py."""

    kind = models.CharField("incident type", max_length=32, choices=IncidentType.choices)
    use_case = models.ForeignKey("reviews.UseCase", null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="runbooks")
    title = models.CharField(max_length=200)
    body = models.TextField()
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        ordering = ["kind", "use_case_id"]
        constraints = [models.UniqueConstraint(fields=["kind", "use_case"], name="runbook_one_per_kind_use_case",
                                               nulls_distinct=False)]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("incidents:runbook", args=[self.pk])


# -- EU AI Act Art. 73 (ADR 0086) -------------------------------------------------------------------------------
class SeriousCategory(models.TextChoices):
    """Art. 3(49): what makes an incident "serious"."""

    NONE = "", "Not a serious incident"
    DEATH = "death", "Death of a person (Art. 3(49)(a))"
    HEALTH = "health", "Serious harm to a person's health (Art. 3(49)(a))"
    CRITICAL_INFRASTRUCTURE = "critical_infrastructure", ("Serious and irreversible disruption of critical "
                                                          "infrastructure (Art. 3(49)(b))")
    FUNDAMENTAL_RIGHTS = "fundamental_rights", ("Infringement of Union law protecting fundamental rights "
                                                "(Art. 3(49)(c))")
    PROPERTY_ENVIRONMENT = "property_environment", "Serious harm to property or the environment (Art. 3(49)(d))"


class RegulatoryAssessment(models.Model):
    """Is this a serious incident under the EU AI Act, and when must it be reported (Art. 73)?"""

    incident = models.OneToOneField(Incident, on_delete=models.CASCADE, related_name="regulatory")
    eu_users = models.BooleanField(default=False)
    category = models.CharField(max_length=24, choices=SeriousCategory.choices, blank=True)
    widespread_infringement = models.BooleanField(default=False)  # Art. 3(61)
    aware_at = models.DateTimeField(null=True, blank=True)  # default: the incident's detected time
    member_states = models.JSONField(default=list, blank=True)
    causal_link = models.TextField(blank=True)
    corrective_actions = models.TextField(blank=True)
    reporter = models.CharField(max_length=200, blank=True)  # the provider/deployer and a contact
    system_registration = models.CharField(max_length=100, blank=True)  # EU database number (Art. 71)
    reported_at = models.DateTimeField(null=True, blank=True)
    report_reference = models.CharField(max_length=100, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    def __str__(self) -> str:
        return f"Art. 73 assessment of INC-{self.incident_id}"


# -- detection rules and paging webhooks (ADR 0087) -------------------------------------------------------------
class Signal(models.TextChoices):
    GATEWAY_ERRORS = "gateway_errors", "Gateway error rate (per-minute SLI counts, per use case)"
    BREAKER_OPEN = "breaker_open", "A deployment's circuit breaker open (per team calling its alias)"
    BUDGET_CAP = "budget_cap", "Budget hard cap hit (429 insufficient_quota refusals, per feature)"
    COST_ANOMALY = "cost_anomaly", "Cost anomaly (spend over its 7-day norm)"
    GUARDRAIL_SPIKE = "guardrail_spike", "Guardrail blocks spike (per key)"
    OUTPUT_PII = "output_pii", "PII found in outputs (per key)"
    EVAL_GATE_FAILURES = "eval_gate_failures", "Eval gate failures (per prompt)"
    TASK_SUCCESS_DROP = "task_success_drop", "Task success drop on live feedback (per use case, against its baseline)"
    GROUNDEDNESS_DROP = "groundedness_drop", "Groundedness drop on live answers (per use case, against its baseline)"
    KPI_MISSED = "kpi_missed", "Scorecard KPIs missing their targets (per use case)"


FEEDBACK_WINDOW_MAX_MINUTES = 2 * 24 * 60  # the live-quality drops' window: the 5-minute counts' retention
LIVE_QUALITY_SIGNALS = (Signal.TASK_SUCCESS_DROP, Signal.GROUNDEDNESS_DROP)  # read folded counts (live_quality.py)


class DetectionRule(models.Model):
    """A threshold on a signal the portal has; evaluated by the beat job. Each finding becomes a suggestion (or,
    for a Sev1 rule with `auto_open`, an incident); a finding already suggested or open folds into it."""

    name = models.CharField(max_length=200)
    signal = models.CharField(max_length=24, choices=Signal.choices)
    threshold = models.FloatField(help_text="Error rate 0–1, spend ratio, or a count in the window (blocks, refusals, "
                                            "outputs with PII, calls to a broken deployment, failed runs); task "
                                            "success or groundedness drop: the least drop that counts, 0–1 (0.1 = "
                                            "10 points); KPIs missed: how many of a use case's KPIs must miss "
                                            "(1 = any).")
    window_minutes = models.PositiveIntegerField(default=60)
    min_requests = models.PositiveIntegerField(default=20, help_text="Gateway errors: fewer requests never fire; task "
                                                                     "success drop: fewer feedbacks in the window "
                                                                     "(or its baseline) never fire; groundedness "
                                                                     "drop: fewer scored answers.")
    severity = models.PositiveSmallIntegerField(choices=Severity.choices, default=Severity.SEV3)
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+",
                             help_text="Only this team's signals (empty: every team).")
    auto_open = models.BooleanField(default=False, help_text="Sev1 rules only: open the incident at once.")
    enabled = models.BooleanField(default=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["signal", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.signal in LIVE_QUALITY_SIGNALS:
            errors = {}
            if self.threshold is not None and not 0 < self.threshold < 1:
                errors["threshold"] = "The least drop that counts, between 0 and 1 (0.1 = 10 points)."
            if self.window_minutes is not None and not 5 <= self.window_minutes <= FEEDBACK_WINDOW_MAX_MINUTES:
                errors["window_minutes"] = (f"From 5 to {FEEDBACK_WINDOW_MAX_MINUTES} minutes (the 5-minute "
                                            "feedback counts are kept 2 days).")
            if errors:
                raise ValidationError(errors)
        if self.signal == Signal.KPI_MISSED and self.threshold is not None and self.threshold < 1:
            raise ValidationError({"threshold": "How many of a use case's KPIs must miss their targets: 1 or more."})


class SuggestionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    OPENED = "opened", "Opened as an incident"
    DISMISSED = "dismissed", "Dismissed"


class IncidentSuggestion(models.Model):
    rule = models.ForeignKey(DetectionRule, on_delete=models.CASCADE, related_name="suggestions")
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    fingerprint = models.CharField(max_length=300)  # rule + what it is about: the dedupe key
    title = models.CharField(max_length=200)
    detail = models.TextField(blank=True)
    values = models.JSONField(default=dict, blank=True)  # prefill: kind, severity, features, deployments, ...
    status = models.CharField(max_length=10, choices=SuggestionStatus.choices, default=SuggestionStatus.PENDING)
    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="suggestions")
    seen = models.PositiveIntegerField(default=1)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        indexes = [models.Index(fields=["fingerprint", "status"], name="incident_suggestion_fp_idx")]

    def __str__(self) -> str:
        return self.title


class PagingWebhook(models.Model):
    """An outbound webhook for paging tools, per severity: an HMAC-signed JSON POST when an incident of that
    level is declared or raised to it (signature as prompts' webhooks: apps/prompts/webhooks.py)."""

    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    url = models.CharField(max_length=500)  # checked by prompts' url_problem (http(s), not private)
    secret_encrypted = models.TextField()
    description = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["severity", "id"]

    def __str__(self) -> str:
        return f"Sev{self.severity} → {self.url}"


class PagingDelivery(models.Model):
    webhook = models.ForeignKey(PagingWebhook, on_delete=models.CASCADE, related_name="deliveries")
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="paging_deliveries")
    event = models.CharField(max_length=40)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.event} INC-{self.incident_id} → {self.webhook_id}"


class FeedbackCount(models.Model):
    """Live task success per use case and time bucket: evals' `Feedback` rows (POST /api/v1/feedback) folded in by
    the detection beat (apps/incidents/live_quality.py), so the task-success-drop rule reads a few rows per use case
    instead of the raw feedback. 5-minute buckets for the recent window, hourly ones for the 7-day baseline."""

    use_case_id = models.BigIntegerField()
    span_minutes = models.PositiveSmallIntegerField()  # 5 or 60
    start = models.DateTimeField()
    total = models.IntegerField(default=0)  # feedback with an outcome (success true or false)
    good = models.IntegerField(default=0)  # of which succeeded

    class Meta:
        constraints = [models.UniqueConstraint(fields=["span_minutes", "start", "use_case_id"],
                                               name="incidents_feedback_count_key")]

    def __str__(self) -> str:
        return f"use case {self.use_case_id} {self.start:%Y-%m-%d %H:%M} +{self.span_minutes} min: " \
               f"{self.good}/{self.total}"


class GroundednessCount(models.Model):
    """Live groundedness per use case and time bucket (ADR 0121): the scores of RAG answers (the usage ledger's
    `groundedness`, attributed through the collection's use-case links) and of products' feedback (`Feedback.
    groundedness`), folded in by the detection beat like FeedbackCount. Count, sum and sum of squares: enough for
    the mean and variance of any range of buckets (the groundedness-drop rule's Welch test)."""

    use_case_id = models.BigIntegerField()
    span_minutes = models.PositiveSmallIntegerField()  # 5 or 60
    start = models.DateTimeField()
    answers = models.IntegerField(default=0)  # scored answers
    total = models.FloatField(default=0)  # sum of their scores
    total_sq = models.FloatField(default=0)  # sum of their squares

    class Meta:
        constraints = [models.UniqueConstraint(fields=["span_minutes", "start", "use_case_id"],
                                               name="incidents_groundedness_count_key")]

    def __str__(self) -> str:
        return f"use case {self.use_case_id} {self.start:%Y-%m-%d %H:%M} +{self.span_minutes} min: " \
               f"{self.total:.1f}/{self.answers}"


class LedgerFoldCursor(models.Model):
    """One row: the last usage event id whose groundedness was folded into GroundednessCount (the fold reads only
    the scored rows after it, through the ledger's partial index)."""

    last_id = models.BigIntegerField(default=0)
    folded_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"scored usage events folded up to #{self.last_id}"


class FeedbackFoldCursor(models.Model):
    """One row: the last evals `Feedback` id folded into FeedbackCount (the fold reads only the rows after it)."""

    last_id = models.BigIntegerField(default=0)
    folded_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"feedback folded up to #{self.last_id}"
