from datetime import datetime

from ninja import Router, Schema

from apps.audit.selectors import AuditFilters, audit_event_list

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
    hash: str
    prev_hash: str


@router.get("/events", response=list[AuditEventOut], summary="Audit events the caller may see, newest first")
def events(request, action: str = "", object_type: str = "", object_id: str = "", team: str = "",
           actor: str = "", limit: int = 100):
    filters = AuditFilters(action=action, object_type=object_type, object_id=object_id, team=team, actor=actor)
    rows = audit_event_list(actor=request.auth, filters=filters)[: max(1, min(limit, 1000))]
    return [
        AuditEventOut(id=e.id, occurred_at=e.occurred_at, actor=e.actor_label, action=e.action,
                      object_type=e.object_type, object_id=e.object_id, object_repr=e.object_repr,
                      team_id=e.team_id, changes=e.changes, request_id=e.request_id, hash=e.hash,
                      prev_hash=e.prev_hash)
        for e in rows
    ]
