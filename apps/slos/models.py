"""Service-level objectives of a use case's gateway traffic, their last evaluation, and their burn-rate alerts.

An SLO is availability (the share of valid calls that succeed) or latency (the share of successful calls faster
than a threshold of the gateway's ladder) over a rolling window; the counts come from apps/gateway/sli.py. The
every-minute evaluation (apps/slos/evaluation.py) writes the evaluated_* fields and opens or resolves alerts.
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone


class Kind(models.TextChoices):
    AVAILABILITY = "availability", "Availability"
    LATENCY = "latency", "Latency"


class Health(models.TextChoices):
    NO_DATA = "no_data", "No data"
    OK = "ok", "Healthy"
    TICKET = "ticket", "Burning (ticket)"
    PAGE = "page", "Burning fast (page)"
    EXHAUSTED = "exhausted", "Budget exhausted"


class Slo(models.Model):
    use_case = models.ForeignKey("reviews.UseCase", on_delete=models.CASCADE, related_name="slos")
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")  # the use case's
    kind = models.CharField(max_length=16, choices=Kind.choices)
    target_percent = models.DecimalField(max_digits=6, decimal_places=3, validators=[
        MinValueValidator(50), MaxValueValidator(99.999)])
    threshold_ms = models.PositiveIntegerField(null=True, blank=True)  # latency only: one of the gateway's ladder
    window_days = models.PositiveSmallIntegerField(default=28, validators=[MinValueValidator(1),
                                                                           MaxValueValidator(90)])
    open_incident = models.BooleanField(default=False)  # open an incident when the fast pair pages
    incident_severity = models.PositiveSmallIntegerField(default=2)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # The last evaluation (derived, rewritten every minute; not audited)
    health = models.CharField(max_length=16, choices=Health.choices, default=Health.NO_DATA)
    sli_percent = models.FloatField(null=True, blank=True)  # over the window
    budget_remaining = models.FloatField(null=True, blank=True)  # 1 = untouched, 0 = spent, < 0 = overspent
    valid_events = models.BigIntegerField(default=0)
    bad_events = models.BigIntegerField(default=0)
    burn_rates = models.JSONField(default=dict, blank=True)  # {"5m": 0.0, "30m": …, "1h", "6h", "3d"}
    evaluated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["use_case_id", "kind", "threshold_ms"]
        verbose_name = "SLO"
        constraints = [
            models.UniqueConstraint(fields=["use_case", "kind", "threshold_ms"], name="slo_one_per_objective",
                                    nulls_distinct=False),
            models.CheckConstraint(condition=Q(kind="availability", threshold_ms__isnull=True)
                                   | Q(kind="latency", threshold_ms__isnull=False), name="slo_threshold_for_latency"),
        ]

    def __str__(self) -> str:
        return self.objective

    def get_absolute_url(self) -> str:
        return reverse("slos:use_case", kwargs={"use_case_id": self.use_case_id}) + f"#slo-{self.pk}"

    @property
    def objective(self) -> str:
        target = f"{Decimal(str(self.target_percent)).normalize():f} %"
        if self.kind == Kind.LATENCY:
            return f"{target} of answered calls under {self.threshold_ms / 1000:g} s"
        return f"{target} of calls succeed"

    @property
    def error_budget(self) -> float:
        """The share of valid events allowed to be bad (1 − target)."""
        return float((100 - Decimal(str(self.target_percent))) / 100)


class SloAlert(models.Model):
    """One firing of a window pair (fast, slow, ticket) on one SLO: opened when both windows burn at or above the
    pair's rate, resolved when they no longer do. At most one open per SLO and pair (no alert storm)."""

    slo = models.ForeignKey(Slo, on_delete=models.CASCADE, related_name="alerts")
    pair = models.CharField(max_length=8)  # apps/slos/policy.py PAIRS
    severity = models.CharField(max_length=8)  # page / ticket
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    long_burn = models.FloatField()  # at opening
    short_burn = models.FloatField()
    peak_burn = models.FloatField()  # the highest long-window burn while open
    incident = models.ForeignKey("incidents.Incident", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    note = models.CharField(max_length=300, blank=True)  # e.g. why no incident was opened

    class Meta:
        ordering = ["-opened_at", "-id"]
        verbose_name = "SLO alert"
        constraints = [models.UniqueConstraint(fields=["slo", "pair"], condition=Q(resolved_at__isnull=True),
                                               name="slo_alert_one_open_per_pair")]
        indexes = [models.Index(fields=["slo", "-opened_at"], name="slo_alert_slo_idx")]

    def __str__(self) -> str:
        return f"{self.pair} burn on {self.slo}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
