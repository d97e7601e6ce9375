"""One helper decides "fragment or page" (NetBox utilities/htmx.py)."""

from django.http import HttpResponse
from django.shortcuts import render


def is_fragment_request(request) -> bool:
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def render_page_or_fragment(request, template: str, context: dict, fragment: str, status: int = 200) -> HttpResponse:
    """Render `template` as a full page, or only its `{% partialdef fragment %}` for htmx requests."""
    name = f"{template}#{fragment}" if is_fragment_request(request) else template
    return render(request, name, context, status=status)


def htmx_location(url: str) -> HttpResponse:
    """After a successful htmx POST: tell htmx where to go instead of a 302 it would follow in place."""
    response = HttpResponse(status=204)
    response["HX-Location"] = url
    return response
