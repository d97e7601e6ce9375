"""Providers (where models live, with their secrets encrypted) and the model catalog."""

import re

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,99}$")
# Settings the portal reads for itself: never a provider's key (it would be sent to the provider's URL).
PORTAL_OWN_SECRETS = frozenset({
    "SECRET_KEY", "PORTAL_ENCRYPTION_KEY", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL",
    "EMAIL_HOST_PASSWORD", "METRICS_TOKEN", "DJANGO_SECRET_KEY",
})
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$")


class ProviderKind(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    AZURE_OPENAI = "azure_openai", "Azure OpenAI"
    OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible (vLLM, Ollama, LiteLLM…)"
    LOCAL = "local", "Offline local (MiniLM embeddings, extractive chat)"


class Provider(models.Model):
    name = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=24, choices=ProviderKind.choices)
    base_url = models.URLField(blank=True, help_text="Empty for OpenAI's default endpoint and for local")
    api_version = models.CharField(max_length=32, blank=True, help_text="Azure OpenAI api-version")
    api_key_encrypted = models.TextField(blank=True, editable=False)
    api_key_env = models.CharField(max_length=100, blank=True,
                                   help_text="Read the key from this environment variable instead")
    timeout_seconds = models.FloatField(default=60.0)
    max_retries = models.PositiveSmallIntegerField(default=3)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        errors = {}
        if self.kind in (ProviderKind.AZURE_OPENAI, ProviderKind.OPENAI_COMPATIBLE) and not self.base_url:
            errors["base_url"] = "This kind of provider needs a base URL."
        if self.kind == ProviderKind.AZURE_OPENAI and not self.api_version:
            errors["api_version"] = "Azure OpenAI needs an api-version, e.g. 2024-10-21."
        if isinstance(self.timeout_seconds, int | float) and not 0 < self.timeout_seconds <= 600:
            errors["timeout_seconds"] = "The timeout must be more than 0 and at most 600 seconds."
        if isinstance(self.max_retries, int) and self.max_retries > 10:
            errors["max_retries"] = "At most 10 retries."
        if isinstance(self.api_key_env, str) and self.api_key_env:
            if not ENV_NAME.match(self.api_key_env):
                errors["api_key_env"] = "An environment variable name: capitals, digits and _, e.g. OPENAI_API_KEY."
            elif self.api_key_env in PORTAL_OWN_SECRETS or not ("KEY" in self.api_key_env
                                                                or "TOKEN" in self.api_key_env):
                errors["api_key_env"] = ("Name a variable that holds a provider key (its name contains KEY or "
                                         "TOKEN); the portal's own secrets cannot be sent to a provider.")
        if self.kind == ProviderKind.LOCAL and (self.base_url or self.api_key_env):
            errors["kind"] = "The offline local provider takes no URL and no key."
        if errors:
            raise ValidationError(errors)

    @property
    def has_secret(self) -> bool:
        return bool(self.api_key_encrypted or self.api_key_env)


class ModelKind(models.TextChoices):
    CHAT = "chat", "Chat"
    EMBEDDING = "embedding", "Embedding"


class Model(models.Model):
    """A model the portal may call. `name` is the portal's id; `remote_name` is what the API expects."""

    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="models")
    name = models.CharField(max_length=120, unique=True)
    remote_name = models.CharField(max_length=200, help_text="Model id or Azure deployment name")
    display_name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=16, choices=ModelKind.choices)
    context_window = models.PositiveIntegerField(default=8192)
    max_output_tokens = models.PositiveIntegerField(default=1024)
    embedding_dimensions = models.PositiveIntegerField(null=True, blank=True)
    price_name = models.CharField(max_length=200, blank=True,
                                  help_text="Name in the price catalog, if not the remote name")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["provider__name", "name"]

    def __str__(self) -> str:
        return self.display_name or self.name

    @property
    def priced_as(self) -> str:
        return self.price_name or self.remote_name

    def clean(self):
        errors = {}
        if self.name and not MODEL_NAME.match(self.name):
            errors["name"] = "Letters, digits and . _ - : / @ only, starting with a letter or digit."
        if self.kind == ModelKind.EMBEDDING and not self.embedding_dimensions:
            errors["embedding_dimensions"] = "An embedding model needs its vector size, e.g. 1536."
        if self.kind == ModelKind.CHAT and self.embedding_dimensions:
            errors["embedding_dimensions"] = "Only embedding models have dimensions."
        if isinstance(self.context_window, int) and isinstance(self.max_output_tokens, int):
            if self.max_output_tokens < 1:
                errors["max_output_tokens"] = "At least 1."
            elif self.max_output_tokens > self.context_window:
                errors["max_output_tokens"] = "Cannot be more than the context window."
        provider = getattr(self, "provider", None) if self.provider_id else None
        if provider is not None and provider.kind == ProviderKind.LOCAL:
            offline = {ModelKind.CHAT: ("local-extractive", None), ModelKind.EMBEDDING: ("local-minilm", 384)}
            remote, dims = offline.get(self.kind, ("", None))
            if self.remote_name != remote:
                errors["remote_name"] = f"The offline provider's {self.kind} model is '{remote}'."
            elif dims and self.embedding_dimensions not in (None, dims):
                errors["embedding_dimensions"] = f"MiniLM vectors have {dims} dimensions."
        if errors:
            raise ValidationError(errors)


class RoutingStrategy(models.TextChoices):
    WEIGHTED = "weighted", "Weighted (random by weight)"
    LEAST_INFLIGHT = "least_inflight", "Least in flight"


class ModelAlias(models.Model):
    """A name callers use ("chat") that routes to one or more catalog models (its deployments).

    Deployments of priority 0 share the traffic by the strategy; higher priorities are fallback tiers, tried
    in order when every deployment of the tier before failed or has its breaker open (docs/models.md).
    """

    name = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=16, choices=ModelKind.choices)
    strategy = models.CharField(max_length=16, choices=RoutingStrategy.choices, default=RoutingStrategy.WEIGHTED)
    deadline_seconds = models.FloatField(default=60.0, help_text="The whole call, every attempt and fallback")
    max_attempts = models.PositiveSmallIntegerField(default=3, help_text="Attempts over all deployments")
    is_active = models.BooleanField(default=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "model aliases"

    def __str__(self) -> str:
        return self.name


class Deployment(models.Model):
    """One catalog model serving an alias, with its share of traffic and its limits."""

    alias = models.ForeignKey(ModelAlias, on_delete=models.CASCADE, related_name="deployments")
    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="deployments")
    weight = models.PositiveIntegerField(default=1, help_text="Share of its tier's traffic; 0 drains it")
    priority = models.PositiveSmallIntegerField(default=0, help_text="0 primary; 1, 2… fallback tiers")
    max_concurrency = models.PositiveIntegerField(null=True, blank=True, help_text="Calls in flight at most")
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per minute at most")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["alias__name", "priority", "id"]
        constraints = [models.UniqueConstraint(fields=["alias", "model"], name="llm_deployment_alias_model_unique")]

    def __str__(self) -> str:
        return f"{self.alias.name} → {self.model.name}"

    @property
    def label(self) -> str:
        """How the ledger and metrics name it: alias/model."""
        return f"{self.alias.name}/{self.model.name}"
