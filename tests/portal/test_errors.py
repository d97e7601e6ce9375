"""Error pages: styled, inside the portal's layout, with the request id; never Django's bare pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied
from django.db import OperationalError
from django.templatetags.static import static
from django.test import Client, RequestFactory
from django.urls import path
from django.utils.functional import SimpleLazyObject

import portal.urls
from portal import views


# A URLconf for this module: the portal's own routes plus views that fail on purpose, with the portal's handlers.
def _forbidden(request):
    raise PermissionDenied("Only the owners of Support AI may publish this prompt.")


def _forbidden_without_message(request):
    raise PermissionDenied


def _crash(request):
    raise RuntimeError("an unexpected failure inside a view")


urlpatterns = [
    path("test-errors/forbidden/", _forbidden),
    path("test-errors/forbidden-plain/", _forbidden_without_message),
    path("test-errors/crash/", _crash),
    *portal.urls.urlpatterns,
]
handler400 = portal.urls.handler400
handler403 = portal.urls.handler403
handler404 = portal.urls.handler404
handler500 = portal.urls.handler500

LAYOUT_MARKERS = ('<header class="topbar">', 'class="brand"')


def assert_in_portal_layout(html: str) -> None:
    for marker in (*LAYOUT_MARKERS, static("portal/portal.css")):  # hashed once collected
        assert marker in html, marker
    assert "Traceback" not in html and "django.core" not in html


def test_the_portal_installs_its_own_error_handlers():
    assert portal.urls.handler404 == "portal.views.error_404"
    assert portal.urls.handler403 == "portal.views.error_403"
    assert portal.urls.handler500 == "portal.views.error_500"
    assert portal.urls.handler400 == "portal.views.error_400"


@pytest.mark.django_db
def test_an_unknown_url_renders_the_styled_404_page_in_the_layout(client):
    response = client.get("/this/does/not/exist/")
    assert response.status_code == 404
    assert [t.name for t in response.templates][:2] == ["errors/404.html", "base.html"]
    html = response.content.decode()
    assert_in_portal_layout(html)
    assert '<div class="code">404</div>' in html and "Not found" in html
    assert response["X-Request-ID"] in html


@pytest.mark.django_db
def test_the_404_page_shows_the_navigation_to_a_logged_in_user(client, engineer):
    client.force_login(engineer)
    html = client.get("/this/does/not/exist/").content.decode()
    assert 'aria-label="Main"' in html and engineer.get_username() in html


@pytest.mark.django_db
def test_the_old_area_placeholder_route_is_gone_and_answers_the_styled_404(client, engineer):
    client.force_login(engineer)
    response = client.get("/areas/prompts/")
    assert response.status_code == 404
    assert "errors/404.html" in [t.name for t in response.templates]


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_permission_denied_renders_the_styled_403_page_with_its_message(client, engineer):
    client.force_login(engineer)
    response = client.get("/test-errors/forbidden/")
    assert response.status_code == 403
    assert [t.name for t in response.templates][:2] == ["errors/403.html", "base.html"]
    html = response.content.decode()
    assert_in_portal_layout(html)
    assert "Only the owners of Support AI may publish this prompt." in html
    assert response["X-Request-ID"] in html


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_permission_denied_without_a_message_gets_a_plain_explanation(client):
    response = client.get("/test-errors/forbidden-plain/")
    assert response.status_code == 403
    assert "You do not have permission to do this." in response.content.decode()


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_an_exception_in_a_view_renders_the_standalone_500_page_with_the_same_request_id():
    client = Client(raise_request_exception=False)
    response = client.get("/test-errors/crash/", HTTP_X_REQUEST_ID="crash-report-0042")
    assert response.status_code == 500
    assert response["X-Request-ID"] == "crash-report-0042"
    html = response.content.decode()
    assert "Something went wrong on our side" in html
    assert "<code>crash-report-0042</code>" in html
    assert "an unexpected failure" not in html and "Traceback" not in html


def test_error_500_renders_the_standalone_page_with_the_request_id():
    request = RequestFactory().get("/anything/")
    request.request_id = "0123456789abcdef0123456789abcdef"
    response = views.error_500(request)
    assert response.status_code == 500
    html = response.content.decode()
    assert "<code>0123456789abcdef0123456789abcdef</code>" in html
    assert '<header class="topbar">' in html and static("portal/portal.css") in html
    assert "{%" not in html and "base.html" not in html  # standalone: no layout that could fail again


def test_error_500_still_renders_when_the_database_is_down():
    """The user lookup (session → database) fails during an outage; the 500 page must not depend on it."""

    def database_down():
        raise OperationalError("could not connect to server")

    request = RequestFactory().get("/anything/")
    request.request_id = "outage-00000001"
    request.user = SimpleLazyObject(database_down)
    response = views.error_500(request)
    assert response.status_code == 500
    assert "<code>outage-00000001</code>" in response.content.decode()


def test_error_500_without_a_request_id_omits_the_line():
    response = views.error_500(RequestFactory().get("/"))
    assert response.status_code == 500
    assert "Request id" not in response.content.decode()


@pytest.mark.django_db
def test_a_csrf_failure_renders_the_portal_403_page_not_djangos_bare_one(engineer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(engineer)
    response = client.post("/accounts/logout/")  # a form POST without its CSRF token
    assert response.status_code == 403
    html = response.content.decode()
    assert "errors/403.html" in [t.name for t in response.templates]
    assert_in_portal_layout(html)
    assert "Reload the page and try again." in html
    assert "CSRF verification failed" not in html and "Forbidden <span>(403)</span>" not in html
    assert response["X-Request-ID"] in html
    # and nothing happened: still logged in
    assert client.get("/accounts/teams/").status_code == 200


@pytest.mark.django_db
def test_a_bad_request_renders_the_styled_400_page():
    client = Client()
    response = client.get("/healthz", HTTP_HOST="not allowed host!")  # invalid Host header -> 400
    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(r'<div class="code">400</div>', html)
    assert "Bad request" in html


# --- production: never a traceback ----------------------------------------------------------------

PRODUCTION_ERRORS = """
import json, sys
import django
from django.conf import settings
django.setup()
settings.STATIC_ROOT = sys.argv[1]  # the image collects static files at build; do the same here
from django.core.management import call_command
call_command("collectstatic", interactive=False, verbosity=0)
from django.test import Client
from django.test.utils import override_settings
with override_settings(ROOT_URLCONF="tests.portal.test_errors"):
    client = Client(raise_request_exception=False, HTTP_X_FORWARDED_PROTO="https")
    pages = {name: client.get(path, secure=True) for name, path in
             [("crash", "/test-errors/crash/"), ("missing", "/no/such/page/")]}
print(json.dumps({"DEBUG": settings.DEBUG, **{name: {"status": r.status_code, "html": r.content.decode()}
                                               for name, r in pages.items()}}))
"""


def test_production_never_shows_a_traceback_or_settings_on_a_500_or_a_404(tmp_path):
    """Dev pages show tracebacks (DEBUG); the production settings must show the styled pages only."""
    from tests.portal.test_settings import GOOD_KEY, loaded, production

    code = PRODUCTION_ERRORS.replace("sys.argv[1]", repr(str(tmp_path / "static")))
    out = loaded(production(tmp_path, {"SECRET_KEY": GOOD_KEY, "ALLOWED_HOSTS": "testserver",
                                       "PYTHONPATH": str(Path(__file__).resolve().parents[2])}, code))
    assert out["DEBUG"] is False
    assert out["crash"]["status"] == 500 and out["missing"]["status"] == 404
    for page in (out["crash"]["html"], out["missing"]["html"]):
        assert '<header class="topbar">' in page and 'class="brand"' in page  # the portal's styled page
        for leak in ("Traceback", "RuntimeError", "an unexpected failure inside a view", "SECRET_KEY",
                     "DATABASES", "Request Method", "Django settings", "technical_500", GOOD_KEY):
            assert leak not in page, leak
    assert "Something went wrong on our side" in out["crash"]["html"]
