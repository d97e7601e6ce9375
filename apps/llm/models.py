"""Providers (where models live, with their secrets encrypted) and the model catalog."""

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


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
        if self.kind in (ProviderKind.AZURE_OPENAI, ProviderKind.OPENAI_COMPATIBLE) and not self.base_url:
            raise ValidationError({"base_url": "This kind of provider needs a base URL."})
        if self.kind == ProviderKind.AZURE_OPENAI and not self.api_version:
            raise ValidationError({"api_version": "Azure OpenAI needs an api-version, e.g. 2024-10-21."})
        if self.timeout_seconds <= 0:
            raise ValidationError({"timeout_seconds": "The timeout must be positive."})

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
