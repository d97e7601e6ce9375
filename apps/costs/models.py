"""The usage ledger and the price catalog. Costs knows feature apps only by ids and names on each event."""

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.core.models import JobRow


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
    # No FK index: (team, occurred_at) below serves team lookups; every index slows ingestion.
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.DO_NOTHING,
                             db_constraint=False, db_index=False, related_name="+")
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
    price = models.ForeignKey(Price, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              db_index=False)
    latency_ms = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=CallStatus.choices, default=CallStatus.OK)
    error_type = models.CharField(max_length=80, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.UNKNOWN)
    ingested_at = models.DateTimeField(default=timezone.now)
    # Gateway traffic (source "gateway"): which key, which alias and deployment answered, how long the
    # upstream took (the rest of latency_ms is the gateway's overhead), time to first token, cache, fallbacks.
    gateway_key_id = models.BigIntegerField(null=True, blank=True)
    alias = models.CharField(max_length=200, blank=True, default="", db_default="")
    deployment = models.CharField(max_length=200, blank=True, default="", db_default="")
    upstream_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    cache_hit = models.BooleanField(default=False, db_default=False)
    fallbacks = models.PositiveSmallIntegerField(default=0, db_default=0)
    # A gateway response-cache hit costs nothing: this is what its answer cost when it was first made (the
    # saving). Not `cache_savings` of the rollups' prompt caching (cached input tokens at a lower price).
    cache_saving = models.DecimalField(max_digits=16, decimal_places=8, null=True, blank=True)
    # The gateway's guardrail actions on this call (safety events): [{"direction", "check", "action", "kinds",
    # ("excerpt", redacted, only where the key's policy says)}]; NULL when there were none.
    guardrail_actions = models.JSONField(null=True, blank=True)
    # The online experiment (apps/experiments) and arm the gateway assigned this call to; NULL for the rest.
    experiment_id = models.BigIntegerField(null=True, blank=True)
    experiment_arm = models.CharField(max_length=40, blank=True, default="", db_default="")
    # The unit the split was sticky on (end user or tenant), as a keyed hash (never the raw value): the experiment
    # page's intervals are per unit (apps/experiments/selectors.py). "" outside experiments.
    experiment_unit = models.CharField(max_length=32, blank=True, default="", db_default="")
    # A RAG answer's groundedness (0-1, the share of its sentences the passages support), computed by the portal
    # when it answered (apps/rag/answers.py); NULL for every other call. Incidents fold it (ADR 0121).
    groundedness = models.FloatField(null=True, blank=True)
    # The switch (an incident mitigation's id) that acted on this call — refused, filtered, rerouted it, or made it
    # answer without retrieval — as the call path marked it (ADR 0122); NULL for the rest. Not a foreign key: costs
    # sits below incidents.
    switch_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [
            # Append-mostly and time-ordered: a BRIN index is tiny and lets range scans skip blocks.
            BrinIndex(fields=["occurred_at"], name="usage_time_brin", pages_per_range=32),
            models.Index(fields=["team", "occurred_at"], name="usage_team_time_idx"),
            # Safety events are rare: a partial index keeps their counts cheap and costs nothing otherwise.
            models.Index(fields=["gateway_key_id", "occurred_at"], name="usage_guardrail_idx",
                         condition=Q(guardrail_actions__isnull=False)),
            # Experiment traffic is a small share: a partial index serves the experiment page's aggregates.
            models.Index(fields=["experiment_id", "experiment_arm"], name="usage_experiment_idx",
                         condition=Q(experiment_id__isnull=False)),
            # Scored answers are a small share: the incidents' fold reads them by id after its cursor (ADR 0121).
            models.Index(fields=["id"], name="usage_groundedness_idx", condition=Q(groundedness__isnull=False)),
            # ... and the scorecards' live groundedness per linked collection and day (apps/scorecards/sources.py).
            models.Index(fields=["collection_id", "occurred_at"], name="usage_grounded_collection_idx",
                         condition=Q(groundedness__isnull=False)),
            # Switched calls are rare: the incident page counts them per switch through this partial index.
            models.Index(fields=["switch_id"], name="usage_switch_idx", condition=Q(switch_id__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.model} {self.input_tokens}+{self.output_tokens} tok @ {self.occurred_at:%Y-%m-%d %H:%M}"

    @property
    def is_unpriced(self) -> bool:
        return self.cost is None and self.status == CallStatus.OK


ZERO = Decimal("0")


# --- rollups: what every dashboard reads ---------------------------------------------------------------------


class Granularity(models.TextChoices):
    DAY = "day"
    HOUR = "hour"
    # Day buckets with every tenant merged (tenant = ""): the same sums, a fraction of the rows when tenants
    # are many. Dashboards read it unless they filter or group by tenant.
    DAY_ALL_TENANTS = "dayx", "day (all tenants)"
    # Day buckets per team and tenant only (every other dimension merged): tenant views without other filters.
    DAY_TENANTS = "dayt", "day (team and tenant)"


class UsageRollup(models.Model):
    """Sums of usage events per time bucket and dimensions, maintained at ingest (same transaction).

    Day buckets (per tenant, and with tenants merged) are kept forever; hour buckets for the last few days. `cost` sums priced events;
    `unpriced` counts events whose cost is unknown, so a missing price never reads as $0.
    """

    granularity = models.CharField(max_length=4, choices=Granularity.choices)
    bucket_start = models.DateTimeField()
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.DO_NOTHING,
                             db_constraint=False, db_index=False, related_name="+")
    feature = models.CharField(max_length=120, blank=True)
    tenant = models.CharField(max_length=120, blank=True)
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=50, blank=True)
    source = models.CharField(max_length=16)
    prompt_name = models.CharField(max_length=200, blank=True)
    prompt_version = models.PositiveIntegerField(null=True, blank=True)
    # The event's use case (a reviews use case's id; UsageEvent.use_case_id): cost and the response cache's saving
    # per use case. In the day, all-tenants and hour buckets; NULL in the team-and-tenant ones (and in rows built
    # before migration 0014 until `manage.py rollups_backfill_use_cases` rebuilds their days).
    use_case_id = models.BigIntegerField(null=True, blank=True)
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    refused = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=8, default=0)
    unpriced = models.BigIntegerField(default=0)
    cache_savings = models.DecimalField(max_digits=20, decimal_places=8, default=0)
    latency_ms_sum = models.BigIntegerField(default=0)
    successes = models.BigIntegerField(default=0)
    failures = models.BigIntegerField(default=0)
    # The gateway's response cache: answers served from it, and what they would have cost (UsageEvent.cache_saving).
    cache_hits = models.BigIntegerField(default=0, db_default=0)
    cache_hit_savings = models.DecimalField(max_digits=20, decimal_places=8, default=0, db_default=0)

    class Meta:
        constraints = [
            # Also the index every dashboard query uses: (granularity, bucket_start) prefix.
            models.UniqueConstraint(
                fields=["granularity", "bucket_start", "team", "feature", "tenant", "model", "provider", "source",
                        "prompt_name", "prompt_version", "use_case_id"],
                name="usage_rollup_key", nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket_start:%Y-%m-%d %H:%M} {self.model} ${self.cost}"


class UsageTokenHistogram(models.Model):
    """Requests per input-token bin (4 bins per doubling) per day, team, feature, model and source: P50/P95."""

    day = models.DateField()
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.DO_NOTHING,
                             db_constraint=False, db_index=False, related_name="+")
    feature = models.CharField(max_length=120, blank=True)
    model = models.CharField(max_length=200)
    source = models.CharField(max_length=16)
    bin = models.SmallIntegerField()
    requests = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "team", "feature", "model", "source", "bin"],
                                    name="usage_histogram_key", nulls_distinct=False),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.feature} bin {self.bin}: {self.requests}"


class LedgerState(models.Model):
    """Small named watermarks of the ledger's housekeeping (reconciled through, raw kept from)."""

    key = models.CharField(max_length=64, unique=True)
    value = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.key} = {self.value:%Y-%m-%d %H:%M}"


# --- budgets ------------------------------------------------------------------------------------------------


class BudgetPeriodKind(models.TextChoices):
    MONTH = "month", "Calendar month"
    WEEK = "week", "Calendar week (Monday to Sunday)"
    ROLLING_30D = "rolling_30d", "Rolling 30 days"


def default_thresholds() -> list[int]:
    return [50, 80, 100]


class Budget(models.Model):
    """A spending limit for a team, or a feature, tenant or use case within it (UTC periods).

    Soft thresholds alert once per period; `hard_cap`, when set, refuses the portal's own model calls that
    could take the period's spend above it (reserved before the call, settled after).
    """

    name = models.CharField(max_length=120)
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="budgets",
                             help_text="Empty: every team (admins only).")
    feature = models.CharField(max_length=120, blank=True, help_text="Empty: every feature.")
    tenant = models.CharField(max_length=120, blank=True, help_text="Empty: every tenant.")
    # A reviews use case (reviews sits above costs: an id, no FK, like GatewayKey.use_case_id). Its spend is read
    # from the raw ledger (budgets.scope_spend): the rollups' use case (0014) lacks days until they are backfilled.
    use_case_id = models.BigIntegerField(null=True, blank=True, help_text="Empty: every use case.")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    period = models.CharField(max_length=16, choices=BudgetPeriodKind.choices, default=BudgetPeriodKind.MONTH)
    thresholds = ArrayField(models.PositiveSmallIntegerField(), default=default_thresholds, blank=True,
                            help_text="Alert when spend crosses these percentages of the amount.")
    hard_cap = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True,
                                   help_text="Refuse the portal's model calls that could exceed this spend.")
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["team__name", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="budget_amount_positive"),
            models.CheckConstraint(condition=Q(hard_cap__isnull=True) | Q(hard_cap__gt=0),
                                   name="budget_hard_cap_positive"),
            models.UniqueConstraint(fields=["team", "feature", "tenant", "use_case_id", "period"],
                                    name="budget_scope_unique", nulls_distinct=False),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def scope_label(self) -> str:
        parts = [self.team.name if self.team_id else "All teams"]
        if self.feature:
            parts.append(f"feature {self.feature}")
        if self.tenant:
            parts.append(f"tenant {self.tenant}")
        if self.use_case_id:
            parts.append(f"use case #{self.use_case_id}")
        return " · ".join(parts)

    def matches(self, team_id, feature: str, tenant: str, use_case_id: int | None = None) -> bool:
        return ((self.team_id is None or self.team_id == team_id) and (not self.feature or self.feature == feature)
                and (not self.tenant or self.tenant == tenant)
                and (self.use_case_id is None or self.use_case_id == use_case_id))


class BudgetPeriod(models.Model):
    """The counter of one budget period: spend settled so far and worst-case spend reserved by calls in flight.

    Rolling budgets have one row whose window slides a day at a time (`window_start`).
    """

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="periods")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField(null=True, blank=True)
    window_start = models.DateTimeField(null=True, blank=True)
    spent = models.DecimalField(max_digits=20, decimal_places=8, default=0)
    reserved = models.DecimalField(max_digits=20, decimal_places=8, default=0)

    class Meta:
        ordering = ["budget_id", "-period_start"]
        constraints = [
            models.UniqueConstraint(fields=["budget", "period_start"], name="budget_period_unique"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="budget_period_reserved_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.budget} from {self.period_start:%Y-%m-%d}"


class BudgetReservation(models.Model):
    """Worst-case cost held for one call in flight; removed when the call's usage event is recorded."""

    request_id = models.CharField(max_length=100, db_index=True)
    period = models.ForeignKey(BudgetPeriod, on_delete=models.CASCADE, related_name="reservations")
    amount = models.DecimalField(max_digits=20, decimal_places=8)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.request_id}: ${self.amount}"


class AlertKind(models.TextChoices):
    THRESHOLD = "threshold", "Threshold crossed"
    FORECAST = "forecast", "Forecast over budget"


class BudgetAlert(models.Model):
    """One alert sent for a budget period: at most one per (period, kind, threshold)."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateTimeField()
    kind = models.CharField(max_length=16, choices=AlertKind.choices)
    threshold = models.PositiveSmallIntegerField(default=0)
    spent = models.DecimalField(max_digits=20, decimal_places=8)
    projected = models.DecimalField(max_digits=20, decimal_places=8, null=True, blank=True)
    message = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["budget", "period_start", "kind", "threshold"], name="budget_alert_once"),
        ]

    def __str__(self) -> str:
        return self.message


class CostAnomaly(models.Model):
    """A day whose spend (team, or feature within it) ran well above its trailing 7-day norm."""

    day = models.DateField()
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    feature = models.CharField(max_length=120, blank=True)
    spend = models.DecimalField(max_digits=20, decimal_places=8)
    baseline = models.DecimalField(max_digits=20, decimal_places=8)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day", "-spend"]
        constraints = [
            models.UniqueConstraint(fields=["day", "team", "feature"], name="cost_anomaly_once",
                                    nulls_distinct=False),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.feature or 'team'} ${self.spend:.2f} vs ${self.baseline:.2f}"

    @property
    def ratio(self):
        return None if not self.baseline else self.spend / self.baseline


# --- re-pricing jobs ---------------------------------------------------------------------------------------


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class RepricingJob(JobRow):
    """Recompute the cost of a model's events in [start, end) from the catalog, then their rollups and budgets."""

    model_name = models.CharField(max_length=200, blank=True, help_text="Empty: every model.")
    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    events_repriced = models.BigIntegerField(default=0)  # progress_done counts the days finished
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(end__gt=models.F("start")), name="repricing_range")]

    def __str__(self) -> str:
        return f"re-price {self.model_name or 'all models'} {self.start:%Y-%m-%d}..{self.end:%Y-%m-%d}"
