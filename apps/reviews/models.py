"""Use cases under review: intake submissions, the tier and its rule trace, council votes, conditions, expiry.

State changes go through `apps.reviews.workflow` (the one state machine) and `services`; every change writes
an audit event and a `Transition` row.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from apps.reviews.questionnaire import check_schema
from apps.reviews.rules import TIER_LABELS, TIER_ORDER


class State(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    TRIAGE = "triage", "Triage"
    IN_REVIEW = "in_review", "In review"
    NEEDS_INFO = "needs_info", "Needs info"
    APPROVED = "approved", "Approved"
    APPROVED_WITH_CONDITIONS = "approved_with_conditions", "Approved with conditions"
    REJECTED = "rejected", "Rejected"
    CONDITIONS_PENDING = "conditions_pending", "Conditions pending"
    ACTIVE = "active", "Active"
    REVIEW_DUE = "review_due", "Review due"
    EXPIRED = "expired", "Expired"
    SUSPENDED = "suspended", "Suspended"
    WITHDRAWN = "withdrawn", "Withdrawn"
    RETIRED = "retired", "Retired"


Tier = models.TextChoices("Tier", [(t, TIER_LABELS[t]) for t in TIER_ORDER])


class LifecycleStage(models.TextChoices):
    IDEA = "idea", "Idea"
    PROTOTYPE = "prototype", "Prototype"
    PILOT = "pilot", "Pilot"
    PRODUCTION = "production", "Production"
    SUNSET = "sunset", "Sunset"


class QuestionnaireVersion(models.Model):
    """An admin-published questionnaire. The highest version is current; v1 ships as a JSON file."""

    version = models.PositiveIntegerField(unique=True)
    schema = models.JSONField()
    note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"questionnaire v{self.version}"

    def clean(self):
        check_schema(self.schema)


class Control(models.Model):
    """The control library (admins edit it). Rules name controls by key."""

    key = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ReviewPolicy(models.Model):
    """The one row of review settings (admins edit it): approval validity and the expiry notice."""

    low_months = models.PositiveSmallIntegerField(default=12)
    elevated_months = models.PositiveSmallIntegerField(default=12)
    high_months = models.PositiveSmallIntegerField(default=6)
    notice_days = models.PositiveSmallIntegerField(default=30)

    class Meta:
        verbose_name_plural = "review policy"

    def __str__(self) -> str:
        return "review policy"

    @classmethod
    def get(cls) -> ReviewPolicy:
        return cls.objects.order_by("pk").first() or cls()

    def months_for(self, tier: str) -> int:
        return {"low": self.low_months, "elevated": self.elevated_months}.get(tier, self.high_months)


class UseCase(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="use_cases")
    title = models.CharField(max_length=200)
    business_owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="owned_use_cases")
    accountable_executive = models.CharField(max_length=200, blank=True)
    purpose = models.TextField()
    intended_uses = models.TextField(blank=True)
    lifecycle_stage = models.CharField(max_length=16, choices=LifecycleStage.choices, default=LifecycleStage.IDEA)
    state = models.CharField(max_length=32, choices=State.choices, default=State.DRAFT)
    # The draft's answers; each submission freezes a copy in `Submission`.
    answers = models.JSONField(default=dict, blank=True)
    questionnaire_version = models.PositiveIntegerField(default=1)
    computed_tier = models.CharField(max_length=16, choices=Tier.choices, blank=True)
    tier = models.CharField(max_length=16, choices=Tier.choices, blank=True)  # effective: computed or changed
    tier_note = models.TextField(blank=True)  # why the effective tier differs from the computed one
    rule_trace = models.JSONField(default=list, blank=True)
    required_controls = models.JSONField(default=list, blank=True)
    review_round = models.PositiveIntegerField(default=0)  # = the number of the submission under review
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision = models.CharField(max_length=32, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    expiry_notice_sent_at = models.DateTimeField(null=True, blank=True)
    rejection_confirmed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                               on_delete=models.SET_NULL, related_name="+")
    rereview_flag = models.JSONField(null=True, blank=True)  # material change: {"reason", "diff", "at"}

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=State.values), name="use_case_state_known"),
        ]
        indexes = [
            models.Index(fields=["state", "tier"], name="use_case_state_tier_idx"),
            models.Index(fields=["team", "state"], name="use_case_team_state_idx"),
            models.Index(fields=["expires_at"], name="use_case_expires_idx"),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("reviews:detail", kwargs={"pk": self.pk})

    @property
    def state_label(self) -> str:
        return State(self.state).label

    @property
    def tier_label(self) -> str:
        return TIER_LABELS.get(self.tier, "—")


class Submission(models.Model):
    """The answers as submitted, one row per submission; a resubmission supersedes the one before."""

    use_case = models.ForeignKey(UseCase, on_delete=models.CASCADE, related_name="submissions")
    number = models.PositiveIntegerField()
    answers = models.JSONField()
    questionnaire_version = models.PositiveIntegerField()
    tier = models.CharField(max_length=16, choices=Tier.choices)
    rule_trace = models.JSONField(default=list)
    controls = models.JSONField(default=list)
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    submitted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["use_case", "-number"]
        constraints = [models.UniqueConstraint(fields=["use_case", "number"], name="submission_unique_number")]

    def __str__(self) -> str:
        return f"submission {self.number} of {self.use_case_id}"

    @property
    def team_id(self):
        return self.use_case.team_id


class Transition(models.Model):
    """The history of states: who moved the use case, from where to where, and why."""

    use_case = models.ForeignKey(UseCase, on_delete=models.CASCADE, related_name="transitions")
    name = models.CharField(max_length=40)
    from_state = models.CharField(max_length=32, choices=State.choices)
    to_state = models.CharField(max_length=32, choices=State.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_label = models.CharField(max_length=200)
    note = models.TextField(blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["occurred_at", "id"]

    def __str__(self) -> str:
        return f"{self.from_state} → {self.to_state} ({self.name})"


class VoteDecision(models.TextChoices):
    APPROVE = "approve", "Approve"
    APPROVE_WITH_CONDITIONS = "approve_with_conditions", "Approve with conditions"
    REJECT = "reject", "Reject"


class Vote(models.Model):
    use_case = models.ForeignKey(UseCase, on_delete=models.CASCADE, related_name="votes")
    round = models.PositiveIntegerField()
    seat = models.CharField(max_length=16)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=32, choices=VoteDecision.choices)
    rationale = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["use_case", "round", "seat"], name="vote_one_per_seat_per_round"),
            models.UniqueConstraint(fields=["use_case", "round", "user"], name="vote_one_per_user_per_round"),
            models.CheckConstraint(condition=~Q(rationale=""), name="vote_rationale_required"),
        ]

    def __str__(self) -> str:
        return f"{self.seat}: {self.decision}"


class TierChangeStatus(models.TextChoices):
    PENDING = "pending", "Awaiting legal sign-off"
    APPLIED = "applied", "Applied"
    REFUSED = "refused", "Refused"


class TierChange(models.Model):
    """A manual tier change. Raising applies at once; lowering waits for a legal seat's sign-off."""

    use_case = models.ForeignKey(UseCase, on_delete=models.CASCADE, related_name="tier_changes")
    from_tier = models.CharField(max_length=16, choices=Tier.choices)
    to_tier = models.CharField(max_length=16, choices=Tier.choices)
    justification = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=TierChangeStatus.choices)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.from_tier} → {self.to_tier} ({self.status})"


class ConditionKind(models.TextChoices):
    AUTOMATIC = "automatic", "Checked by the portal"
    MANUAL = "manual", "Evidence accepted by a reviewer"


class ConditionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    MET = "met", "Met"
    FAILING = "failing", "Failing"
    EVIDENCE_SUBMITTED = "evidence_submitted", "Evidence submitted"


class Condition(models.Model):
    use_case = models.ForeignKey(UseCase, on_delete=models.CASCADE, related_name="conditions")
    title = models.CharField(max_length=200)
    how_met = models.TextField(blank=True)
    control = models.CharField(max_length=60, blank=True)  # the control (library key) this condition evidences
    kind = models.CharField(max_length=16, choices=ConditionKind.choices)
    predicate = models.CharField(max_length=60, blank=True)
    params = models.JSONField(default=dict, blank=True)  # locked when the condition is set
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    due_date = models.DateField()
    status = models.CharField(max_length=20, choices=ConditionStatus.choices, default=ConditionStatus.PENDING)
    evidence_url = models.CharField(max_length=500, blank=True)
    evidence_file = models.FileField(upload_to="reviews/evidence/%Y/%m/", blank=True)
    evidence_note = models.TextField(blank=True)
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    accepted_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    due_notice_sent_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["due_date", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind="manual") | ~Q(predicate=""), name="condition_auto_has_predicate"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def team_id(self):
        return self.use_case.team_id


class ConditionCheck(models.Model):
    """One evaluation of an automatic condition: the value seen, pass or fail, when."""

    condition = models.ForeignKey(Condition, on_delete=models.CASCADE, related_name="checks")
    value = models.JSONField(null=True, blank=True)
    passed = models.BooleanField()
    detail = models.CharField(max_length=500, blank=True)
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-checked_at", "-id"]

    def __str__(self) -> str:
        return f"{self.condition_id}: {'pass' if self.passed else 'fail'}"


class UseCasePrompt(models.Model):
    use_case = models.ForeignKey(UseCase, on_delete=models.CASCADE, related_name="prompt_links")
    prompt = models.ForeignKey("prompts.Prompt", on_delete=models.CASCADE, related_name="use_case_links")
    # What production looked like when last reviewed (model, tools), to spot material changes.
    reviewed_config = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["use_case", "prompt"], name="use_case_prompt_unique")]

    def __str__(self) -> str:
        return f"{self.use_case_id} ↔ prompt {self.prompt_id}"


class UseCaseCollection(models.Model):
    use_case = models.ForeignKey(UseCase, on_delete=models.CASCADE, related_name="collection_links")
    collection = models.ForeignKey("rag.Collection", on_delete=models.CASCADE, related_name="use_case_links")
    # The collection's data class when last reviewed, to spot a move to more sensitive data.
    reviewed_data_class = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["use_case", "collection_id"], name="use_case_collection_unique")]

    def __str__(self) -> str:
        return f"{self.use_case_id} ↔ collection {self.collection_id}"


class Comment(models.Model):
    use_case = models.ForeignKey(UseCase, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"comment {self.pk} on {self.use_case_id}"


class ControlWaiver(models.Model):
    """A council member waives one required control of a use case, with a reason: it no longer blocks activation."""

    use_case = models.ForeignKey(UseCase, on_delete=models.CASCADE, related_name="control_waivers")
    control = models.CharField(max_length=60)  # the control (library key) waived
    reason = models.TextField()
    waived_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    seat = models.CharField(max_length=16, blank=True)  # the council seat the waiver was given for
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["control", "id"]
        constraints = [
            models.UniqueConstraint(fields=["use_case", "control"], name="control_waiver_once_per_use_case"),
        ]

    def __str__(self) -> str:
        return f"{self.use_case_id}: {self.control} waived"
