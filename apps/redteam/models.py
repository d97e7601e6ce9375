"""Red-team campaigns: a target (a prompt version, or a gateway key and alias) × probes × strategies, run in
the background; each generated attack is one row with its output, its verdict and the evidence behind it, and
a reviewer's triage. Decisions: ADR 0111–0114; docs/redteam.md."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from apps.core.models import JobRow


class CampaignStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


ACTIVE_STATUSES = (CampaignStatus.QUEUED, CampaignStatus.RUNNING)


class TargetKind(models.TextChoices):
    PROMPT_VERSION = "prompt_version", "Prompt version"
    GATEWAY_KEY = "gateway_key", "Gateway key and alias"


class Campaign(JobRow):
    """One red-team run. The probes and strategies are chosen at launch and expanded into Attack rows once,
    so a resumed campaign does exactly the attacks it was launched with."""

    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="redteam_campaigns")
    name = models.CharField(max_length=200)
    target_kind = models.CharField(max_length=20, choices=TargetKind.choices, default=TargetKind.PROMPT_VERSION)
    prompt = models.ForeignKey("prompts.Prompt", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="redteam_campaigns")
    prompt_version = models.ForeignKey("prompts.PromptVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="redteam_campaigns")
    version_hash = models.CharField(max_length=64, blank=True)  # the exact content a release gate matches
    variables = models.JSONField(default=dict, blank=True)  # the prompt's variables; the attack goes in one
    attack_variable = models.CharField(max_length=100, blank=True)  # which variable carries the attack
    gateway_key = models.ForeignKey("gateway.GatewayKey", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    system_prompt = models.TextField(blank=True)  # gateway target: the system prompt the app behind it sends
    target_label = models.CharField(max_length=300)
    model = models.CharField(max_length=120)
    library_version = models.CharField(max_length=40, blank=True)
    include_team_probes = models.BooleanField(default=True)
    strategies = models.JSONField(default=list)
    seed = models.PositiveIntegerField(default=0)
    canaries = models.JSONField(default=dict)  # {"system": "...", "document": "..."}
    evaluator_ids = models.JSONField(default=list, blank=True)  # evals policy evaluators (definition ids)
    judge = models.ForeignKey("evals.EvaluatorDefinition", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    concurrency = models.PositiveSmallIntegerField(default=20)
    # Indirect injection against a RAG collection (ADR 0120): planted documents go into a campaign-owned overlay
    # of this collection and the collection's own retrieval picks the context. Empty: in-memory context (0113).
    rag_collection = models.ForeignKey("rag.Collection", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    rag_snapshot = models.JSONField(default=dict, blank=True)  # the collection as the run found it (the report)
    active_statuses = ACTIVE_STATUSES
    status = models.CharField(max_length=12, choices=CampaignStatus.choices, default=CampaignStatus.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    errors_count = models.PositiveIntegerField(default=0)
    successes = models.PositiveIntegerField(default=0)
    spend = models.DecimalField(max_digits=16, decimal_places=8, default=0)
    last_progress_at = models.DateTimeField(null=True, blank=True)
    summary = models.JSONField(default=dict, blank=True)  # ASR per category/strategy/overall with intervals
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["team", "-created_at"], name="rt_campaign_team_idx"),
            models.Index(fields=["status", "last_progress_at"], name="rt_campaign_status_idx"),
            models.Index(fields=["prompt_version", "status"], name="rt_campaign_version_idx"),
        ]

    def __str__(self) -> str:
        return f"campaign {self.pk}: {self.name}"

    def get_absolute_url(self) -> str:
        return reverse("redteam:campaign_detail", args=[self.pk])


class AttackStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    ERROR = "error", "Error"


class Triage(models.TextChoices):
    UNTRIAGED = "", "Not triaged"
    ACCEPTED_RISK = "accepted_risk", "Accepted risk"
    TO_FIX = "to_fix", "To fix"
    FALSE_POSITIVE = "false_positive", "False positive"


class Attack(models.Model):
    """One generated attack (a probe through a strategy) and what it did. `key` = probe id + strategy: the same
    attack in two campaigns has the same key, which is how a paired comparison lines them up."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="attacks")
    key = models.CharField(max_length=300)
    position = models.PositiveIntegerField(default=0)
    probe_id = models.CharField(max_length=200)
    category = models.CharField(max_length=80)
    owasp = models.CharField(max_length=20, blank=True)  # e.g. LLM01
    harm = models.CharField(max_length=80, blank=True)
    strategy = models.CharField(max_length=60)
    text = models.TextField()
    document = models.TextField(blank=True)  # indirect injection: the planted retrieved document
    turns = models.JSONField(default=list, blank=True)  # multi-turn: the user turns after `text`
    marker = models.CharField(max_length=200, blank=True)  # injection-success marker the probe asks for
    # Against a collection: was the planted document among the retrieved chunks, and its best rank (1 = first).
    planted_retrieved = models.BooleanField(null=True)  # None: no retrieval in the loop
    planted_rank = models.PositiveSmallIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=AttackStatus.choices, default=AttackStatus.PENDING)
    claim_token = models.CharField(max_length=32, blank=True)
    claimed_by = models.CharField(max_length=200, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    not_before = models.DateTimeField(null=True, blank=True)
    output = models.TextField(blank=True)
    error = models.TextField(blank=True)
    success = models.BooleanField(null=True)  # None: not scored (an error)
    evidence = models.JSONField(default=dict, blank=True)  # each detector's verdict and what it saw
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=16, decimal_places=8, null=True, blank=True)
    request_id = models.CharField(max_length=100, blank=True)
    triage = models.CharField(max_length=16, choices=Triage.choices, default=Triage.UNTRIAGED, blank=True)
    triage_note = models.TextField(blank=True)
    triaged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    triaged_at = models.DateTimeField(null=True, blank=True)
    dataset_item = models.CharField(max_length=200, blank=True)  # "<dataset id>:<item key>" once exported
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "key"], name="rt_attack_unique_key")]
        indexes = [
            models.Index(fields=["campaign", "status"], name="rt_attack_status_idx"),
            models.Index(fields=["campaign", "success"], name="rt_attack_success_idx",
                         condition=Q(success=True)),
        ]

    def __str__(self) -> str:
        return f"{self.probe_id} × {self.strategy}"


class TeamProbe(models.Model):
    """A probe a team wrote (by hand or imported from JSONL); joins the library's probes in its campaigns."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="redteam_probes")
    probe_id = models.CharField(max_length=200)
    category = models.CharField(max_length=80)
    owasp = models.CharField(max_length=20, blank=True)
    harm = models.CharField(max_length=80, blank=True)
    text = models.TextField()
    marker = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["probe_id"]
        constraints = [models.UniqueConstraint(fields=["team", "probe_id"], name="rt_team_probe_unique")]

    def __str__(self) -> str:
        return self.probe_id


class RedTeamPolicy(models.Model):
    """A team's release-gate thresholds: the largest ASR upper bound (Wilson 95 %) allowed per category
    (`default_max_asr` for a category not listed), and the judge agreement a gate may rely on."""

    team = models.OneToOneField("accounts.Team", on_delete=models.CASCADE, related_name="redteam_policy")
    default_max_asr = models.FloatField(default=0.2)
    max_asr = models.JSONField(default=dict, blank=True)  # {category: max upper bound}
    min_judge_kappa = models.FloatField(default=0.6)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"red-team policy of {self.team_id}"

    def threshold(self, category: str) -> float:
        return float(self.max_asr.get(category, self.default_max_asr))


class CampaignKey(models.Model):
    """A gateway key a campaign's worker minted for its run (ADR 0119): a twin of the target key (its exact
    settings and guardrails, its own secret, which only that worker ever held, in memory). Revoked when the
    worker's run ends; the beat job revokes what a dead worker left. Its usage events are the campaign's calls."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="run_keys")
    key = models.OneToOneField("gateway.GatewayKey", on_delete=models.CASCADE, related_name="+")
    owner = models.CharField(max_length=200)  # the worker that minted it (the claims' owner string)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"key {self.key_id} of campaign {self.campaign_id}"
