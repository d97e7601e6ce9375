from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps.notifications import services
from apps.notifications.models import Notification
from apps.notifications.waiting import waiting_count, waiting_for
from portal.htmx import is_fragment_request, render_page_or_fragment

PAGE_SIZE = 30


@login_required
@require_GET
def inbox(request):
    rows = Notification.objects.filter(user=request.user)
    if request.GET.get("unread") == "1":
        rows = rows.filter(read_at__isnull=True)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "unread": services.unread_count(request.user),
               "only_unread": request.GET.get("unread") == "1", "waiting": waiting_for(request.user)}
    return render_page_or_fragment(request, "notifications/inbox.html", context, fragment="list")


@login_required
@require_POST
def mark_read(request):
    raw = request.POST.getlist("id")
    ids = [int(i) for i in raw if i.isdigit()] if raw else None
    services.notifications_mark_read(user=request.user, ids=ids)
    if is_fragment_request(request):
        return inbox_fragment(request)
    return redirect("notifications:inbox")


def inbox_fragment(request):
    rows = Notification.objects.filter(user=request.user)
    page = Paginator(rows, PAGE_SIZE).get_page(request.POST.get("page") or 1)
    context = {"page": page, "unread": services.unread_count(request.user), "oob_count": True}
    return render(request, "notifications/inbox.html#list", context)


@login_required
@require_GET
def unread_badge(request):
    return render(request, "notifications/inbox.html#badge", {"unread": services.unread_count(request.user)})


@login_required
@require_GET
def waiting_badge(request):
    """The header's "waiting on you" link, loaded after the page (empty when nothing waits)."""
    items = waiting_for(request.user)
    return render(request, "notifications/inbox.html#waiting_badge",
                  {"waiting": items, "waiting_total": waiting_count(items)})
