import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from apps.accounts.permissions import Action, is_admin, sees_everything, teams_for
from apps.audit import services
from apps.audit.chain import event_to_dict
from apps.audit.forms import AuditFilterForm
from apps.audit.links import attach_links, registered_types
from apps.audit.selectors import audit_event_list
from apps.core.htmx import is_fragment_request, render_page_or_fragment

PAGE_SIZE = 50
EXPORT_CHUNK = 2000


def _filter_form(request) -> AuditFilterForm:
    teams = teams_for(request.user, Action.VIEW).only("slug", "name").order_by("name")
    form = AuditFilterForm(request.GET, teams=teams)
    form.is_valid()  # errors are shown next to their field; the valid fields still filter
    return form


def _list_context(request, form: AuditFilterForm) -> dict:
    events = audit_event_list(actor=request.user, filters=form.filters())
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = attach_links(page.object_list)
    query = request.GET.copy()
    query.pop("page", None)
    admin = is_admin(request.user)
    return {
        "form": form, "page": page, "query": query.urlencode(), "show_ip": sees_everything(request.user),
        "object_types": registered_types(),
        "is_admin": admin, "verification": services.chain_verification_latest() if admin else None,
    }


@login_required
@require_GET
def audit_list(request):
    """The log (full page), or only its results (htmx): same URL, same filters."""
    form = _filter_form(request)
    return render_page_or_fragment(request, "audit/list.html", _list_context(request, form), fragment="results")


@login_required
@require_GET
def audit_export(request):
    """JSONL of the filtered log in chain order, streamed so a large export never sits in memory."""
    form = _filter_form(request)
    if form.errors:  # export exactly what was asked for, or nothing: say what to fix on the page
        context = _list_context(request, form)
        context["export_error"] = True
        return render(request, "audit/list.html", context, status=400)
    events = audit_event_list(actor=request.user, filters=form.filters()).order_by("id")
    include_ip = sees_everything(request.user)

    def lines():
        for event in events.iterator(chunk_size=EXPORT_CHUNK):
            yield json.dumps(event_to_dict(event, include_ip=include_ip), ensure_ascii=False) + "\n"

    response = StreamingHttpResponse(lines(), content_type="application/x-ndjson; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-log-{timezone.now():%Y%m%d-%H%M%S}.jsonl"'
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def audit_verify(request):
    """Admins: GET the chain indicator (polled while a run is active); POST to start a run."""
    if not is_admin(request.user):
        raise PermissionDenied("Only admins verify the audit chain.")
    if request.method == "POST":
        run = services.chain_verification_request(requested_by=request.user)
        if not is_fragment_request(request):
            messages.info(request, f"Chain verification #{run.pk} is {run.get_status_display().lower()}.")
            return redirect("audit:list")
    context = {"is_admin": True, "verification": services.chain_verification_latest()}
    return render(request, "audit/list.html#chain_status", context)
