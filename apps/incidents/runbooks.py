"""Runbooks (ADR 0085): one Markdown page per incident type, and optionally one per use case and type written by
the use case's team. An incident links its type's page and those of its use cases; the use case page lists its
own (through reviews' use-case panel registry, apps/incidents/hooks.py). Rendered through the one sanitiser,
apps/core/markdown.py.

Who may write: council members and admins the portal-wide ones; engineers and owners of the use case's team
(and council, admins) a use case's own. Everyone signed in reads them. One audit event per save.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from apps.accounts.permissions import Action, can, is_admin, is_authenticated, user_of
from apps.audit.services import audit_record
from apps.core.markdown import markdown_html
from apps.incidents import rules
from apps.incidents.models import Incident, IncidentType, Runbook
from apps.incidents.services import clean_text

MAX_BODY = 50_000


def may_write(actor, use_case=None) -> bool:
    if is_admin(actor) or rules.is_council_member(actor):
        return True
    return use_case is not None and can(actor, Action.CHANGE, use_case)


@transaction.atomic
def runbook_save(*, actor, kind: str, title: str, body: str, use_case=None) -> Runbook:
    """Create or replace the runbook of (`kind`, `use_case`)."""
    if not may_write(actor, use_case):
        raise PermissionDenied("Council members write the portal's runbooks; a use case's team writes its own.")
    errors = {}
    if kind not in IncidentType.values:
        errors["kind"] = f"Choose one of: {', '.join(IncidentType.labels)}."
    for name, value, limit in (("title", title, 200), ("body", body, MAX_BODY)):
        try:
            clean_text(name, value, required=True, limit=limit)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    runbook, created = Runbook.objects.select_for_update().get_or_create(
        kind=kind, use_case=use_case, defaults={"title": title.strip(), "body": body.strip()})
    if not created:
        runbook.title, runbook.body = title.strip(), body.strip()
    runbook.updated_at, runbook.updated_by = timezone.now(), user_of(actor)
    runbook.save()
    audit_record(action="incident.runbook_save", obj=runbook, actor=actor,
                 team=use_case.team_id if use_case is not None else None,
                 changes={"kind": kind, "use_case": getattr(use_case, "pk", None), "created": created,
                          "title": runbook.title, "body_chars": len(runbook.body)})
    return runbook


def runbook_html(runbook: Runbook) -> str:
    return markdown_html(runbook.body)


def runbook_list():
    return Runbook.objects.select_related("use_case", "updated_by").order_by("kind", "use_case__title")


def runbook_get(*, actor, pk: int) -> Runbook:
    runbook = runbook_list().filter(pk=pk).first() if is_authenticated(actor) else None
    if runbook is None:
        raise Http404("No runbook matches the given query.")
    return runbook


def runbooks_for_incident(incident: Incident) -> list[Runbook]:
    """The use cases' own runbooks for the incident's type first, then the type's portal-wide one."""
    use_case_ids = list(incident.use_cases.values_list("pk", flat=True))
    own = list(runbook_list().filter(kind=incident.kind, use_case_id__in=use_case_ids)) if use_case_ids else []
    general = list(runbook_list().filter(kind=incident.kind, use_case__isnull=True))
    return own + general


def runbooks_for_use_case(use_case) -> list[Runbook]:
    return list(runbook_list().filter(use_case=use_case))
