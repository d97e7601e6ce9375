import json

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.views.decorators.http import require_GET

from apps.audit.forms import AuditFilterForm
from apps.audit.selectors import audit_event_list
from portal.htmx import render_page_or_fragment

PAGE_SIZE = 50


@login_required
@require_GET
def audit_list(request):
    form = AuditFilterForm(request.GET or None)
    events = audit_event_list(actor=request.user, filters=form.filters() if form.is_bound else None)
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render_page_or_fragment(
        request, "audit/list.html", {"form": form, "page": page, "query": query.urlencode()}, fragment="results",
    )


@login_required
@require_GET
def audit_export(request):
    """JSONL of the filtered log, streamed so a large export never sits in memory."""
    form = AuditFilterForm(request.GET or None)
    events = audit_event_list(actor=request.user, filters=form.filters() if form.is_bound else None)

    def lines():
        for e in events.iterator(chunk_size=2000):
            yield json.dumps({
                "id": e.id, "occurred_at": e.occurred_at.isoformat(), "actor": e.actor_label,
                "actor_user_id": e.actor_user_id, "actor_token_id": e.actor_token_id, "action": e.action,
                "object_type": e.object_type, "object_id": e.object_id, "object_repr": e.object_repr,
                "team_id": e.team_id, "changes": e.changes, "request_id": e.request_id, "ip": e.ip,
                "prev_hash": e.prev_hash, "hash": e.hash,
            }) + "\n"

    response = StreamingHttpResponse(lines(), content_type="application/x-ndjson")
    response["Content-Disposition"] = 'attachment; filename="audit-log.jsonl"'
    return response
