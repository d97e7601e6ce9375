"""Writes to the provider and model catalog: validated, atomic, audited. Keys are write-only."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.audit.services import audit_record, diff
from apps.llm.adapters import adapter_for
from apps.llm.adapters.local import CHAT_MODEL, EMBEDDING_MODEL
from apps.llm.crypto import encrypt_secret
from apps.llm.errors import LlmError
from apps.llm.models import Model, ModelKind, Provider, ProviderKind

log = logging.getLogger(__name__)

PROVIDER_FIELDS = ("kind", "base_url", "api_version", "api_key_env", "timeout_seconds", "max_retries", "is_active")
MODEL_FIELDS = ("remote_name", "display_name", "context_window", "max_output_tokens", "embedding_dimensions",
                "price_name", "is_active")
LOCAL_PROVIDER = "local"
LOCAL_CHAT_DISPLAY = "Offline extractive (local, no LLM)"
LOCAL_EMBEDDING_DISPLAY = "MiniLM embeddings (local, 384-d)"


def snapshot(obj, fields) -> dict:
    """The named fields' values, for an audit event's before/after."""
    return {name: getattr(obj, name) for name in fields}


def refuse_fixed_fields(fields: dict, editable) -> None:
    """An update may only name editable fields; any other is refused next to its name."""
    unknown = set(fields) - set(editable)
    if unknown:
        raise ValidationError({field: "This field cannot be changed." for field in sorted(unknown)})


def _validate_provider(provider: Provider, *, key_given: bool) -> None:
    errors: dict[str, str] = {}
    try:
        provider.full_clean()
    except ValidationError as exc:
        errors.update({field: " ".join(messages) for field, messages in exc.message_dict.items()})
    if key_given and provider.api_key_env:
        errors.setdefault("api_key", "Give a key or an environment variable name, not both.")
    if key_given and provider.kind == ProviderKind.LOCAL:
        errors.setdefault("api_key", "The offline local provider needs no key.")
    needs_key = provider.kind in (ProviderKind.OPENAI, ProviderKind.AZURE_OPENAI)
    if needs_key and not (provider.api_key_encrypted or provider.api_key_env):
        errors.setdefault("api_key", "This provider needs an API key, or the name of an environment variable "
                                     "that holds it.")
    if errors:
        raise ValidationError(errors)


def _key_change(provider: Provider, api_key: str, clear_api_key: bool) -> str | None:
    """Apply a key change to `provider` (unsaved); say what happened, for the audit log, never the key."""
    had_key = bool(provider.api_key_encrypted)
    if api_key:
        if provider.api_key_env or provider.kind == ProviderKind.LOCAL:
            return None  # refused by validation, with a message next to the field
        provider.api_key_encrypted = encrypt_secret(api_key)
        return "replaced" if had_key else "set"
    if had_key and (clear_api_key or provider.api_key_env):  # an env var name takes over from a stored key
        provider.api_key_encrypted = ""
        return "cleared"
    return None


@transaction.atomic
def provider_create(*, name: str, kind: str, base_url: str = "", api_version: str = "", api_key: str = "",
                    api_key_env: str = "", timeout_seconds: float = 60.0, max_retries: int = 3,
                    is_active: bool = True, user=None) -> Provider:
    provider = Provider(name=(name or "").strip(), kind=kind, base_url=(base_url or "").strip(),
                        api_version=(api_version or "").strip(), api_key_env=(api_key_env or "").strip(),
                        timeout_seconds=timeout_seconds, max_retries=max_retries, is_active=is_active)
    api_key = (api_key or "").strip()
    key_change = _key_change(provider, api_key, clear_api_key=False)
    _validate_provider(provider, key_given=bool(api_key))
    provider.save()
    audit_record(action="llm.provider.create", obj=provider, actor=user,
                 changes={**snapshot(provider, ("name", *PROVIDER_FIELDS)), "api_key": key_change or "none"})
    return provider


@transaction.atomic
def provider_update(*, provider: Provider, user=None, api_key: str = "", clear_api_key: bool = False,
                    **fields) -> Provider:
    """Change settings; `api_key` replaces the stored key, `clear_api_key` removes it, neither keeps it.

    The name is the provider's identity on the ledger and in prices, so it does not change.
    """
    refuse_fixed_fields(fields, PROVIDER_FIELDS)
    provider = Provider.objects.select_for_update().get(pk=provider.pk)
    before = snapshot(provider, PROVIDER_FIELDS)
    for field, value in fields.items():
        setattr(provider, field, value.strip() if isinstance(value, str) else value)
    api_key = (api_key or "").strip()
    key_change = _key_change(provider, api_key, clear_api_key)
    _validate_provider(provider, key_given=bool(api_key))
    changes = diff(before, snapshot(provider, PROVIDER_FIELDS))
    if key_change:
        changes["api_key"] = key_change
    if not changes:
        return provider
    provider.save()
    audit_record(action="llm.provider.update", obj=provider, actor=user, changes=changes)
    return provider


def _validate_model(model: Model) -> None:
    try:
        model.full_clean()
    except ValidationError as exc:
        raise ValidationError({field: " ".join(messages) for field, messages in exc.message_dict.items()})


@transaction.atomic
def model_create(*, provider: Provider, name: str, remote_name: str, kind: str, display_name: str = "",
                 context_window: int = 8192, max_output_tokens: int = 1024, embedding_dimensions: int | None = None,
                 price_name: str = "", is_active: bool = True, user=None) -> Model:
    model = Model(provider=provider, name=(name or "").strip(), remote_name=(remote_name or "").strip(), kind=kind,
                  display_name=(display_name or "").strip(), context_window=context_window,
                  max_output_tokens=max_output_tokens, embedding_dimensions=embedding_dimensions,
                  price_name=(price_name or "").strip(), is_active=is_active)
    _validate_model(model)
    model.save()
    audit_record(action="llm.model.create", obj=model, actor=user,
                 changes={"provider": provider.name, "name": model.name, "kind": kind,
                          **snapshot(model, MODEL_FIELDS)})
    return model


@transaction.atomic
def model_update(*, model: Model, user=None, **fields) -> Model:
    """Change a model's settings. Its name (the id on the ledger and in prompts), provider and kind stay."""
    refuse_fixed_fields(fields, MODEL_FIELDS)
    model = Model.objects.select_for_update().select_related("provider").get(pk=model.pk)
    before = snapshot(model, MODEL_FIELDS)
    for field, value in fields.items():
        setattr(model, field, value.strip() if isinstance(value, str) else value)
    _validate_model(model)
    changes = diff(before, snapshot(model, MODEL_FIELDS))
    if not changes:
        return model
    model.save()
    audit_record(action="llm.model.update", obj=model, actor=user, changes=changes)
    return model


@dataclass(frozen=True)
class ConnectionTest:
    ok: bool
    message: str
    latency_ms: int


def provider_test_connection(provider: Provider) -> ConnectionTest:
    """Can the portal reach this provider with its key? Not a state change: nothing is written or audited.

    Local: loads MiniLM and embeds a word. OpenAI kinds: lists models (free; no tokens spent), once, no retries.
    """
    started = time.perf_counter()
    try:
        message, ok = adapter_for(provider).test_connection(), True
    except LlmError as exc:
        message, ok = str(exc), False
    except Exception as exc:  # a test must answer, whatever broke
        log.exception("connection test of provider %s failed unexpectedly", provider.name)
        message, ok = f"Unexpected failure ({type(exc).__name__}); see the server log.", False
    return ConnectionTest(ok=ok, message=message, latency_ms=round((time.perf_counter() - started) * 1000))


@transaction.atomic
def catalog_seed_local() -> dict[str, int]:
    """The offline provider and its two models, created if missing (idempotent; existing rows are left alone)."""
    created = {"providers": 0, "models": 0}
    provider = Provider.objects.filter(name=LOCAL_PROVIDER).first()
    if provider is None:
        provider = provider_create(name=LOCAL_PROVIDER, kind=ProviderKind.LOCAL, timeout_seconds=60.0, max_retries=0)
        created["providers"] += 1
    wanted = [
        {"name": CHAT_MODEL, "remote_name": CHAT_MODEL, "kind": ModelKind.CHAT, "display_name": LOCAL_CHAT_DISPLAY,
         "context_window": 8192, "max_output_tokens": 1024},
        {"name": EMBEDDING_MODEL, "remote_name": EMBEDDING_MODEL, "kind": ModelKind.EMBEDDING,
         "display_name": LOCAL_EMBEDDING_DISPLAY, "context_window": 256, "max_output_tokens": 1,
         "embedding_dimensions": 384},
    ]
    for spec in wanted:
        if not Model.objects.filter(name=spec["name"]).exists():
            model_create(provider=provider, **spec)
            created["models"] += 1
    return created
