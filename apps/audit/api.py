from datetime import date, datetime

from django.core.exceptions import PermissionDenied, ValidationError
from ninja import Query, Router, Schema

from apps.accounts.models import ApiToken
from apps.accounts.permissions import SCOPE_ACTIONS, Action, sees_everything
from apps.audit.selectors import AuditFilters, audit_event_list
from apps.core.api_errors import errors

router = Router(tags=["audit"])


class AuditEventOut(Schema):
    id: int
    occurred_at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    object_repr: str
    team_id: int | None
    changes: dict
    request_id: str
    ip: str | None = None  # admins and council only
    hash_version: int
    hash: str
    prev_hash: str


@router.get("/events", response={200: list[AuditEventOut], **errors(403, 422)},
            summary="Audit events the caller may see, newest first (page with before=<smallest id seen>)")
def events(request, action: str = "", object_type: str = "", object_id: str = "", team: str = "",
           actor: str = "", date_from: date | None = None, date_to: date | None = None,
           before: int | None = Query(None, ge=1), limit: int = Query(100, ge=1, le=1000)):
    caller = request.auth
    if isinstance(caller, ApiToken) and Action.VIEW not in SCOPE_ACTIONS.get(caller.scope, ()):
        raise PermissionDenied(f"A token with scope '{caller.scope}' cannot read the audit log: use a read token.")
    if date_from and date_to and date_from > date_to:
        raise ValidationError({"date_to": "The end date is before the start date."})
    filters = AuditFilters(action=action, object_type=object_type, object_id=object_id, team=team, actor=actor,
                           date_from=date_from, date_to=date_to)
    rows = audit_event_list(actor=caller, filters=filters)
    if before is not None:
        rows = rows.filter(id__lt=before)
    show_ip = sees_everything(caller)
    return [
        AuditEventOut(id=e.id, occurred_at=e.occurred_at, actor=e.actor_label, action=e.action,
                      object_type=e.object_type, object_id=e.object_id, object_repr=e.object_repr,
                      team_id=e.team_id, changes=e.changes, request_id=e.request_id,
                      ip=e.ip if show_ip else None, hash_version=e.hash_version, hash=e.hash, prev_hash=e.prev_hash)
        for e in rows[:limit]
    ]
