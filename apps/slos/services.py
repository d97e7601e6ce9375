"""Writes of SLO definitions: create and change (turning one off is a change). One audit event each; bad input
raises ValidationError naming the field and writes nothing.

Who may: engineers and owners of the use case's team, and admins (Action.CHANGE on the use case); council
members and viewers read. The evaluation and its alerts are apps/slos/evaluation.py.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.permissions import Action, can, user_of
from apps.audit.services import audit_record
from apps.core.request_context import acting_as
from apps.gateway.sli import LATENCY_THRESHOLDS_MS
from apps.incidents.models import Severity
from apps.reviews.models import UseCase
from apps.slos import evaluation
from apps.slos.models import Kind, Slo

FIELDS = ("kind", "target_percent", "threshold_ms", "window_days", "open_incident", "incident_severity", "is_active")
MIN_TARGET, MAX_TARGET = Decimal("50"), Decimal("99.999")


def may_define(actor, use_case: UseCase) -> bool:
    return can(actor, Action.CHANGE, use_case)


def _clean_target(value) -> Decimal:
    try:
        target = Decimal(str(value).strip().rstrip("%").strip())
    except (InvalidOperation, ValueError):
        raise ValidationError({"target_percent": "A percentage such as 99.5."})
    if not target.is_finite() or not MIN_TARGET <= target <= MAX_TARGET:
        raise ValidationError({"target_percent": f"Between {MIN_TARGET} and {MAX_TARGET} % (100 % leaves no error "
                                                 "budget to spend)."})
    if target != target.quantize(Decimal("0.001")):
        raise ValidationError({"target_percent": "At most three decimals (99.995)."})
    return target.quantize(Decimal("0.001"))


def _clean_int(name: str, value, low: int, high: int, message: str) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise ValidationError({name: message})
    if not low <= number <= high:
        raise ValidationError({name: message})
    return number


def _clean(values: dict) -> dict:
    """Every field given, cleaned; all errors at once."""
    cleaned, errors = {}, {}
    steps = {
        "kind": lambda v: Kind(v) if v in Kind.values else _fail("kind", "Availability or latency."),
        "target_percent": _clean_target,
        "window_days": lambda v: _clean_int("window_days", v, 1, 90, "A whole number of days from 1 to 90."),
        "incident_severity": lambda v: _clean_int("incident_severity", v, Severity.SEV1, Severity.SEV4,
                                                  "Sev1 to Sev4."),
        "open_incident": bool, "is_active": bool,
        "threshold_ms": lambda v: None if v in (None, "") else _clean_int(
            "threshold_ms", v, 1, 10**7, "A threshold in milliseconds."),
    }
    for name, value in values.items():
        try:
            cleaned[name] = steps[name](value)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    kind = cleaned.get("kind")
    threshold = cleaned.get("threshold_ms")
    if kind == Kind.LATENCY and "threshold_ms" not in errors:
        ladder = ", ".join(f"{ms / 1000:g} s" for ms in LATENCY_THRESHOLDS_MS)
        if threshold is None:
            errors["threshold_ms"] = [f"A latency SLO needs a threshold: one of {ladder}."]
        elif threshold not in LATENCY_THRESHOLDS_MS:
            errors["threshold_ms"] = [f"The gateway counts exactly at {ladder}: choose one of them."]
    elif kind == Kind.AVAILABILITY:
        cleaned["threshold_ms"] = None
    if errors:
        raise ValidationError(errors)
    return cleaned


def _fail(name: str, message: str):
    raise ValidationError({name: message})


def _snapshot(slo: Slo) -> dict:
    return {"use_case": slo.use_case_id, "kind": slo.kind, "target_percent": str(slo.target_percent),
            "threshold_ms": slo.threshold_ms, "window_days": slo.window_days, "open_incident": slo.open_incident,
            "incident_severity": slo.incident_severity, "is_active": slo.is_active}


def _duplicate() -> ValidationError:
    return ValidationError({"threshold_ms": "This use case already has that objective: change the one it has."})


def _evaluate_now(slo_id: int) -> None:
    with acting_as(None):  # alerts it opens are the system's, not the editor's
        evaluation.slos_evaluate(slo_ids=[slo_id])


def _evaluate_after_commit(slo: Slo) -> None:
    transaction.on_commit(lambda: _evaluate_now(slo.pk))  # the page shows its status at once


@transaction.atomic
def slo_create(*, actor, use_case: UseCase, kind, target_percent, threshold_ms=None, window_days=28,
               open_incident=False, incident_severity=Severity.SEV2, is_active=True) -> Slo:
    if not may_define(actor, use_case):
        raise PermissionDenied("Engineers and owners of the use case's team define its SLOs.")
    cleaned = _clean({"kind": kind, "target_percent": target_percent, "threshold_ms": threshold_ms,
                      "window_days": window_days, "open_incident": open_incident,
                      "incident_severity": incident_severity, "is_active": is_active})
    now = timezone.now()
    try:
        with transaction.atomic():
            slo = Slo.objects.create(use_case=use_case, team_id=use_case.team_id, created_by=user_of(actor),
                                     updated_by=user_of(actor), created_at=now, updated_at=now, **cleaned)
    except IntegrityError:
        raise _duplicate()
    audit_record(action="slo.create", obj=slo, team=use_case.team, actor=actor, changes=_snapshot(slo))
    _evaluate_after_commit(slo)
    return slo


@transaction.atomic
def slo_update(*, actor, slo: Slo, **values) -> Slo:
    """Change any of FIELDS (kind and threshold together). Turning it off resolves its open alerts at the next
    evaluation."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise TypeError(f"slo_update() got unexpected keyword arguments {sorted(unknown)}")
    slo = Slo.objects.select_for_update().select_related("use_case").get(pk=slo.pk)
    if not may_define(actor, slo.use_case):
        raise PermissionDenied("Engineers and owners of the use case's team change its SLOs.")
    before = _snapshot(slo)
    cleaned = _clean({"kind": slo.kind, "threshold_ms": slo.threshold_ms, **values})
    for name, value in cleaned.items():
        setattr(slo, name, value)
    after = _snapshot(slo)
    changed = {name: [before[name], after[name]] for name in after if before[name] != after[name]}
    if not changed:
        return slo
    slo.updated_by, slo.updated_at = user_of(actor), timezone.now()
    try:
        with transaction.atomic():
            slo.save()
    except IntegrityError:
        raise _duplicate()
    audit_record(action="slo.update", obj=slo, team=slo.team, actor=actor, changes=changed)
    _evaluate_after_commit(slo)
    return slo
