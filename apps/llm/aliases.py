"""Writes to model aliases and their deployments (the routing table): validated, atomic, audited.

Split from services.py by purpose (like costs' ledger.py). Every change reaches every process's cached
routes within LLM_ROUTES_CHECK_SECONDS (hooks.py connects the signals to routing.routes_changed).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.audit.services import audit_record, diff
from apps.llm.models import MODEL_NAME, Deployment, Model, ModelAlias, ModelKind, RoutingStrategy
from apps.llm.services import refuse_fixed_fields, snapshot

ALIAS_FIELDS = ("strategy", "deadline_seconds", "max_attempts", "is_active", "description")
DEPLOYMENT_FIELDS = ("weight", "priority", "max_concurrency", "rpm_limit", "is_active")
MAX_DEADLINE_SECONDS = 600
MAX_ATTEMPTS = 10
MAX_PRIORITY = 9
MAX_WEIGHT = 1000


def _whole(value, low: int, high: int | None = None, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return "A whole number."
    if value < low or (high is not None and value > high):
        return f"From {low} to {high}." if high is not None else f"At least {low}."
    return None


def _validate_alias(alias: ModelAlias, *, creating: bool) -> None:
    errors: dict[str, str] = {}
    if creating:
        if not alias.name or not MODEL_NAME.match(alias.name) or len(alias.name) > 120:
            errors["name"] = "Letters, digits and . _ - : / @ only, starting with a letter or digit (at most 120)."
        elif ModelAlias.objects.filter(name=alias.name).exists():
            errors["name"] = "An alias with this name exists."
        elif Model.objects.filter(name=alias.name).exists():
            errors["name"] = "A catalog model has this name: an alias must not hide it."
        if alias.kind not in ModelKind.values:
            errors["kind"] = f"One of {', '.join(ModelKind.values)}."
    if alias.strategy not in RoutingStrategy.values:
        errors["strategy"] = f"One of {', '.join(RoutingStrategy.values)}."
    deadline = alias.deadline_seconds
    if isinstance(deadline, bool) or not isinstance(deadline, int | float) or not 0 < deadline <= MAX_DEADLINE_SECONDS:
        errors["deadline_seconds"] = f"More than 0 and at most {MAX_DEADLINE_SECONDS} seconds."
    if problem := _whole(alias.max_attempts, 1, MAX_ATTEMPTS):
        errors["max_attempts"] = problem
    if not isinstance(alias.description, str) or len(alias.description) > 2000:
        errors["description"] = "At most 2,000 characters."
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def alias_create(*, name: str, kind: str, strategy: str = RoutingStrategy.WEIGHTED, deadline_seconds: float = 60.0,
                 max_attempts: int = 3, description: str = "", is_active: bool = True, actor=None) -> ModelAlias:
    alias = ModelAlias(name=(name or "").strip(), kind=kind, strategy=strategy, deadline_seconds=deadline_seconds,
                       max_attempts=max_attempts, description=(description or "").strip(), is_active=is_active)
    _validate_alias(alias, creating=True)
    alias.save()
    audit_record(action="llm.alias.create", obj=alias, actor=actor,
                 changes={"name": alias.name, "kind": alias.kind, **snapshot(alias, ALIAS_FIELDS)})
    return alias


@transaction.atomic
def alias_update(*, alias: ModelAlias, actor=None, **fields) -> ModelAlias:
    """Change how an alias routes. Its name (what callers use) and kind stay."""
    refuse_fixed_fields(fields, ALIAS_FIELDS)
    alias = ModelAlias.objects.select_for_update().get(pk=alias.pk)
    before = snapshot(alias, ALIAS_FIELDS)
    for field, value in fields.items():
        setattr(alias, field, value.strip() if isinstance(value, str) else value)
    _validate_alias(alias, creating=False)
    changes = diff(before, snapshot(alias, ALIAS_FIELDS))
    if not changes:
        return alias
    alias.save()
    audit_record(action="llm.alias.update", obj=alias, actor=actor, changes=changes)
    return alias


def _validate_deployment(deployment: Deployment, *, creating: bool) -> None:
    errors: dict[str, str] = {}
    if creating:
        alias, model = deployment.alias, deployment.model
        if model.kind != alias.kind:
            errors["model"] = (f"'{model.name}' is a {model.get_kind_display().lower()} model; "
                               f"the alias '{alias.name}' routes {alias.get_kind_display().lower()} calls.")
        elif Deployment.objects.filter(alias=alias, model=model).exists():
            errors["model"] = f"'{model.name}' already serves '{alias.name}'."
    for field, low, high, optional in (("weight", 0, MAX_WEIGHT, False), ("priority", 0, MAX_PRIORITY, False),
                                       ("max_concurrency", 1, None, True), ("rpm_limit", 1, None, True)):
        if problem := _whole(getattr(deployment, field), low, high, optional=optional):
            errors[field] = problem
    if errors:
        raise ValidationError(errors)


def _deployment_repr(deployment: Deployment) -> str:
    return f"{deployment.alias.name} → {deployment.model.name}"


@transaction.atomic
def deployment_create(*, alias: ModelAlias, model: Model, weight: int = 1, priority: int = 0,
                      max_concurrency: int | None = None, rpm_limit: int | None = None, is_active: bool = True,
                      actor=None) -> Deployment:
    deployment = Deployment(alias=alias, model=model, weight=weight, priority=priority,
                            max_concurrency=max_concurrency, rpm_limit=rpm_limit, is_active=is_active)
    _validate_deployment(deployment, creating=True)
    deployment.save()
    audit_record(action="llm.deployment.create", obj=deployment, object_repr=_deployment_repr(deployment),
                 actor=actor, changes={"alias": alias.name, "model": model.name,
                                       **snapshot(deployment, DEPLOYMENT_FIELDS)})
    return deployment


@transaction.atomic
def deployment_update(*, deployment: Deployment, actor=None, **fields) -> Deployment:
    """Change a deployment's share, tier or limits (its alias and model stay: add another instead)."""
    refuse_fixed_fields(fields, DEPLOYMENT_FIELDS)
    deployment = Deployment.objects.select_for_update().select_related("alias", "model").get(pk=deployment.pk)
    before = snapshot(deployment, DEPLOYMENT_FIELDS)
    for field, value in fields.items():
        setattr(deployment, field, value)
    _validate_deployment(deployment, creating=False)
    changes = diff(before, snapshot(deployment, DEPLOYMENT_FIELDS))
    if not changes:
        return deployment
    deployment.save()
    audit_record(action="llm.deployment.update", obj=deployment, object_repr=_deployment_repr(deployment),
                 actor=actor, changes=changes)
    return deployment


@transaction.atomic
def deployment_delete(*, deployment: Deployment, actor=None) -> None:
    deployment = Deployment.objects.select_for_update().select_related("alias", "model").get(pk=deployment.pk)
    audit_record(action="llm.deployment.delete", obj=deployment, object_repr=_deployment_repr(deployment),
                 actor=actor, changes=snapshot(deployment, DEPLOYMENT_FIELDS))
    deployment.delete()


@transaction.atomic
def aliases_seed_local() -> int:
    """The demo's aliases on the offline models: "chat" → local-extractive, "embeddings" → local-minilm.
    Idempotent; needs catalog_seed_local() first. Returns how many aliases were created."""
    created = 0
    for name, kind, model_name, description in (
            ("chat", ModelKind.CHAT, "local-extractive", "The demo's chat alias, on the offline extractive model."),
            ("embeddings", ModelKind.EMBEDDING, "local-minilm", "The demo's embeddings alias, on offline MiniLM.")):
        model = Model.objects.filter(name=model_name).first()
        if model is None or ModelAlias.objects.filter(name=name).exists():
            continue
        alias = alias_create(name=name, kind=kind, description=description)
        deployment_create(alias=alias, model=model)
        created += 1
    return created
