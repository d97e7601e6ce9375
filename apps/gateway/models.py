"""Virtual keys of the LLM gateway: per team and feature, optionally bound to a use case, hashed at rest."""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator
from django.db import models
from django.utils import timezone


class InputPii(models.TextChoices):
    """PII (and secrets) in a request: pass it on, replace it with placeholders, or refuse the request."""

    ALLOW = "allow", "allow"
    REDACT = "redact", "redact"
    BLOCK = "block", "block"


class Injection(models.TextChoices):
    """Prompt-injection heuristics on user and tool messages: not run, count it, or refuse the request."""

    OFF = "off", "off"
    FLAG = "flag", "flag"
    BLOCK = "block", "block"


class OutputScan(models.TextChoices):
    """PII and secrets in the model's answer: not scanned, counted, replaced, or the answer refused."""

    OFF = "off", "off"
    FLAG = "flag", "flag"
    REDACT = "redact", "redact"
    BLOCK = "block", "block"


class EventContent(models.TextChoices):
    """What a safety event may keep of the text: nothing (kinds and counts only), or a redacted excerpt."""

    NONE = "none", "none (kinds and counts only)"
    REDACTED = "redacted", "a redacted excerpt"


class GatewayKey(models.Model):
    """A bearer key for `/v1/`. Only the SHA-256 of the whole secret is stored; the secret is shown once.

    `key_id` is the public part: the secret starts `pk-gw-<key_id>-`, and lists, logs and audit events name
    the key by that prefix only. A rotated key (`rotated_from` on its successor) keeps working until
    `overlap_ends_at`. Limits left empty mean "no limit of that kind".
    """

    PREFIX = "pk-gw-"

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="gateway_keys")
    name = models.CharField(max_length=100)
    feature = models.CharField(max_length=120)
    # Reviews sits above the gateway: the use case is checked through apps/gateway/registry.py, not an FK.
    use_case_id = models.BigIntegerField(null=True, blank=True)
    allowed_aliases = models.JSONField(default=list, blank=True)  # [] = every alias the team may use
    key_id = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    requests_per_day = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_day = models.PositiveIntegerField(null=True, blank=True)
    dollars_per_day = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    cache_enabled = models.BooleanField(default=False)  # opt-in response cache (apps/gateway/cache.py)
    cache_ttl_seconds = models.PositiveIntegerField(null=True, blank=True)  # empty: GATEWAY_CACHE_TTL_SECONDS
    cache_sampled = models.BooleanField(default=False)  # also cache sampled requests (temperature > 0 or unset)
    store_bodies = models.BooleanField(default=False)  # opt-in; bodies are never stored by default
    # With store_bodies: the share of answered chat requests whose (PII-redacted) bodies are kept.
    body_sample_percent = models.PositiveSmallIntegerField(default=100, validators=[MaxValueValidator(100)])
    # Guardrails in the path (apps/gateway/guard.py); a use case's policy may be stricter (the stricter wins).
    guard_input_pii = models.CharField(max_length=8, choices=InputPii.choices, default=InputPii.ALLOW,
                                       db_default=InputPii.ALLOW)
    guard_injection = models.CharField(max_length=8, choices=Injection.choices, default=Injection.OFF,
                                       db_default=Injection.OFF)
    guard_output = models.CharField(max_length=8, choices=OutputScan.choices, default=OutputScan.OFF,
                                    db_default=OutputScan.OFF)
    guard_event_content = models.CharField(max_length=8, choices=EventContent.choices, default=EventContent.NONE,
                                           db_default=EventContent.NONE)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    rotated_from = models.OneToOneField("self", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="rotated_to")
    overlap_ends_at = models.DateTimeField(null=True, blank=True)  # set on a key that was rotated

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "gateway key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def prefix(self) -> str:
        return f"{self.PREFIX}{self.key_id}"

    def state(self, now=None) -> str:
        """active / retiring (rotated, still in its overlap) / revoked / expired / retired."""
        now = now or timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        if self.overlap_ends_at is not None:
            return "retiring" if self.overlap_ends_at > now else "retired"
        return "active"

    @property
    def is_active(self) -> bool:
        return self.state() in ("active", "retiring")


class GatewayBody(models.Model):
    """A sampled request and response of a key that opted in (`store_bodies`), PII-redacted before it was
    written (apps/gateway/bodies.py), kept GATEWAY_BODY_RETENTION_DAYS. One per request id (its usage event's)."""

    request_id = models.CharField(max_length=100, unique=True)
    key = models.ForeignKey(GatewayKey, on_delete=models.CASCADE, related_name="bodies")
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)
    model = models.CharField(max_length=200, blank=True)  # what the client asked for (alias or prompt:…)
    request = models.JSONField(default=dict)  # {"messages", "metadata", "parameters"}, redacted
    response = models.JSONField(default=dict)  # {"content", "finish_reason"}, redacted
    redactions = models.PositiveIntegerField(default=0)  # PII spans replaced before writing

    class Meta:
        ordering = ["-occurred_at"]
        verbose_name = "gateway body sample"

    def __str__(self) -> str:
        return f"body of {self.request_id}"


class TrafficDaily(models.Model):
    """Gateway calls per UTC day, key, alias, deployment and model: what the cost dashboard's gateway panel sums.

    Written by the recorder in the ledger write's transaction, from the rows the ledger inserted (so exactly once
    per call). `cost` is the cost when recorded: a later repricing corrects the ledger and the main charts, not
    these sums.
    """

    day = models.DateField()
    team_id = models.BigIntegerField(null=True)
    gateway_key_id = models.BigIntegerField()
    alias = models.CharField(max_length=200, blank=True)
    deployment = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=200, blank=True)
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    refused = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=8, default=0)
    unpriced = models.BigIntegerField(default=0)
    fallbacks = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "team_id", "gateway_key_id", "alias", "deployment",
                                                       "model"], name="gateway_traffic_daily_key",
                                               nulls_distinct=False)]

    def __str__(self) -> str:
        return f"{self.day} key {self.gateway_key_id} {self.deployment or self.model}: {self.requests} calls"


class LatencyDaily(models.Model):
    """Gateway calls per UTC day, key, alias and deployment in latency bins (apps/costs/rollups.token_bin of the
    milliseconds: four per doubling, ±9 %), for each measure: total, upstream, overhead (total − upstream) and
    time to first token. p50/p95 over any span of days come from summed bins."""

    class Measure(models.TextChoices):
        TOTAL = "total"
        UPSTREAM = "upstream"
        OVERHEAD = "overhead"
        TTFT = "ttft"

    day = models.DateField()
    team_id = models.BigIntegerField(null=True)
    gateway_key_id = models.BigIntegerField()
    alias = models.CharField(max_length=200, blank=True)
    deployment = models.CharField(max_length=200, blank=True)
    measure = models.CharField(max_length=8, choices=Measure.choices)
    bin = models.SmallIntegerField()
    requests = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "team_id", "gateway_key_id", "alias", "deployment",
                                                       "measure", "bin"], name="gateway_latency_daily_key",
                                               nulls_distinct=False)]

    def __str__(self) -> str:
        return f"{self.day} key {self.gateway_key_id} {self.measure} bin {self.bin}: {self.requests}"


class SliMinute(models.Model):
    """Per minute and use case: the service-level indicator counts the SLOs read (apps/gateway/sli.py). Written by
    the recorder in the ledger write's transaction, from the rows the ledger inserted (exactly once per call).
    A key bound to no use case is counted under its own series, `use_case_id = -key_id` (ADR 0103).

    `requests` are the valid events of availability (calls a client could expect to succeed), `bad` those the
    platform failed; `answered` are the successful calls (the latency SLIs' valid events) and `slow[i]` those of
    them slower than `sli.LATENCY_THRESHOLDS_MS[i]` (exact counts at a fixed ladder, like Prometheus' `le`)."""

    minute = models.DateTimeField()
    use_case_id = models.BigIntegerField()
    requests = models.IntegerField(default=0)
    bad = models.IntegerField(default=0)
    answered = models.IntegerField(default=0)
    slow = ArrayField(models.IntegerField(), default=list)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["use_case_id", "minute"], name="gateway_sli_minute_key")]
        indexes = [models.Index(fields=["minute"], name="gateway_sli_minute_idx")]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} use case {self.use_case_id}: {self.bad}/{self.requests} bad"


class SliHour(models.Model):
    """The same counts per hour (what windows longer than a few hours sum; minutes are kept only
    GATEWAY_SLI_MINUTE_RETENTION_HOURS)."""

    hour = models.DateTimeField()
    use_case_id = models.BigIntegerField()
    requests = models.BigIntegerField(default=0)
    bad = models.BigIntegerField(default=0)
    answered = models.BigIntegerField(default=0)
    slow = ArrayField(models.BigIntegerField(), default=list)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["use_case_id", "hour"], name="gateway_sli_hour_key")]
        indexes = [models.Index(fields=["hour"], name="gateway_sli_hour_idx")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h use case {self.use_case_id}: {self.bad}/{self.requests} bad"
class EndUserDaily(models.Model):
    """Distinct end users per UTC day and key (the OpenAI `user` field, or `metadata.end_user`), for adoption.

    Only a keyed hash of the identifier is stored (never the raw value, which is often an e-mail address): one row
    per (day, key, user), written by the recorder with ON CONFLICT DO NOTHING in the ledger write's transaction.
    `use_case_id` is the key's use case when the call was made, so adoption counts need no join.
    """

    day = models.DateField()
    gateway_key_id = models.BigIntegerField()
    use_case_id = models.BigIntegerField(null=True, blank=True)
    user_hash = models.CharField(max_length=32)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "gateway_key_id", "user_hash"],
                                               name="gateway_end_user_daily_key")]
        indexes = [models.Index(fields=["use_case_id", "day"], name="gateway_end_user_uc_day_idx",
                                condition=models.Q(use_case_id__isnull=False))]

    def __str__(self) -> str:
        return f"{self.day} key {self.gateway_key_id} user {self.user_hash[:8]}…"


class TokensDaily(models.Model):
    """Per UTC day and use case: how many tokens (input + output) each gateway call used, as a log-scale histogram
    (`bins[b]` = calls in `apps.costs.rollups.token_bin` b: four bins per doubling, ±9 %), so the scorecards'
    median and P95 tokens per request need no scan of the ledger. Calls refused before reaching a model are not in
    the bins. `updated_at` is when a call of the use case last landed that day (whatever its status): the
    scorecards' refresh recomputes only use cases with new data (docs/scorecards.md).

    Written by the recorder in the ledger write's transaction (apps/gateway/traffic.py `tokens_add`): one upsert
    per batch."""

    day = models.DateField()
    use_case_id = models.BigIntegerField()
    bins = ArrayField(models.BigIntegerField(), default=list)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # One index only: an upsert changes no indexed column, so PostgreSQL updates the row in place (HOT).
        constraints = [models.UniqueConstraint(fields=["use_case_id", "day"], name="gateway_tokens_daily_key")]

    def __str__(self) -> str:
        return f"{self.day} use case {self.use_case_id}: {sum(self.bins)} calls in token bins"
