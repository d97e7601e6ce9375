"""KPI scorecards: per use case, each KPI's latest value against its target (computed by Celery from rollups,
never on a page view), the targets the owner set (defaults by risk tier otherwise) and their change history.

Decisions: ADR 0100; docs/scorecards.md. The KPI definitions themselves are code (`apps/scorecards/kpis.py`).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Status(models.TextChoices):
    MET = "met", "Met"
    AT_RISK = "at_risk", "At risk"
    MISSED = "missed", "Missed"
    NO_DATA = "no_data", "No data"
    NO_TARGET = "no_target", "No target"


STATUS_ORDER = {Status.MISSED: 0, Status.AT_RISK: 1, Status.NO_DATA: 2, Status.NO_TARGET: 3, Status.MET: 4}


class ScorecardSnapshot(models.Model):
    """The latest scorecard of one use case (rewritten in place by each refresh): what the portfolio reads.

    `cells` is {kpi key: [status, display value]} so the portfolio page renders from one row per use case.
    """

    use_case = models.OneToOneField("reviews.UseCase", on_delete=models.CASCADE, related_name="scorecard")
    team_id = models.BigIntegerField(db_index=True)
    tier = models.CharField(max_length=16, blank=True)
    computed_at = models.DateTimeField(default=timezone.now)
    window_days = models.PositiveSmallIntegerField(default=28)
    met = models.PositiveSmallIntegerField(default=0)
    at_risk = models.PositiveSmallIntegerField(default=0)
    missed = models.PositiveSmallIntegerField(default=0)
    no_data = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.NO_DATA)  # the worst KPI's
    cells = models.JSONField(default=dict)

    class Meta:
        ordering = ["use_case_id"]

    def __str__(self) -> str:
        return f"scorecard of use case {self.use_case_id} at {self.computed_at:%Y-%m-%d %H:%M}"


class KpiValue(models.Model):
    """One KPI of one use case's latest scorecard."""

    snapshot = models.ForeignKey(ScorecardSnapshot, on_delete=models.CASCADE, related_name="values")
    kpi = models.CharField(max_length=40)
    value = models.FloatField(null=True, blank=True)
    target = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices)
    ci_low = models.FloatField(null=True, blank=True)
    ci_high = models.FloatField(null=True, blank=True)
    sample = models.BigIntegerField(null=True, blank=True)  # outcomes, requests, runs... (the KPI says which)
    numerator = models.FloatField(null=True, blank=True)  # for pooled team/portfolio roll-ups of rates
    denominator = models.FloatField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True)  # what it is made of, or what would feed it
    source_url = models.CharField(max_length=500, blank=True)
    trend = models.JSONField(default=list)  # [[window end (ISO date), value or null], ...] oldest first
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["snapshot_id", "id"]
        constraints = [models.UniqueConstraint(fields=["snapshot", "kpi"], name="scorecard_kpi_value_once")]

    def __str__(self) -> str:
        return f"{self.kpi} = {self.value} ({self.status})"


class ScorecardRollup(models.Model):
    """Team and portfolio roll-ups of the latest refresh: per KPI, statuses counted and a pooled value."""

    scope = models.CharField(max_length=12)  # "team" or "portfolio"
    team_id = models.BigIntegerField(null=True, blank=True)
    kpis = models.JSONField(default=dict)  # {kpi: {"value", "met", "at_risk", "missed", "no_data"}}
    use_cases = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "team_id"], name="scorecard_rollup_once",
                                               nulls_distinct=False)]

    def __str__(self) -> str:
        return f"{self.scope} roll-up {self.team_id or ''}"


class KpiTarget(models.Model):
    """A target the use case's owner set for one KPI (no row: the risk tier's default)."""

    use_case = models.ForeignKey("reviews.UseCase", on_delete=models.CASCADE, related_name="kpi_targets")
    kpi = models.CharField(max_length=40)
    value = models.FloatField()
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["use_case", "kpi"], name="scorecard_target_once")]

    def __str__(self) -> str:
        return f"{self.kpi} target {self.value} for use case {self.use_case_id}"


class TargetChange(models.Model):
    """The history of targets (and of the adoption's target users): who, when, old, new, why. Append-only."""

    use_case = models.ForeignKey("reviews.UseCase", on_delete=models.CASCADE, related_name="kpi_target_changes")
    kpi = models.CharField(max_length=40)  # a KPI key, or "target_users"
    old_value = models.FloatField(null=True, blank=True)  # None: the tier default was in force
    new_value = models.FloatField(null=True, blank=True)  # None: back to the tier default
    reason = models.CharField(max_length=500, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_label = models.CharField(max_length=200)
    occurred_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kpi}: {self.old_value} → {self.new_value} by {self.actor_label}"


class ScorecardProfile(models.Model):
    """Per use case inputs that are not KPI targets: how many end users the feature is meant for (adoption)."""

    use_case = models.OneToOneField("reviews.UseCase", on_delete=models.CASCADE, related_name="scorecard_profile")
    target_users = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"profile of use case {self.use_case_id}"
