"""Content-Security-Policy (portal/csp.py, ADR 0008): every response carries it, scripts come only from our static
files, and no template has an inline script or an inline event handler the policy would block."""

import re
from pathlib import Path

from django.http import HttpResponse
from django.test import RequestFactory

from portal.csp import ContentSecurityPolicyMiddleware

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def directives(header: str) -> dict[str, list[str]]:
    return {name: sources for name, *sources in (part.split() for part in header.split(";") if part.strip())}


def test_pages_carry_a_policy_that_allows_no_inline_script_and_no_eval(client_for, viewer):
    for url in ("/accounts/login/", "/costs/", "/evals/dashboards/"):
        response = client_for(viewer).get(url)
        policy = directives(response["Content-Security-Policy"])
        assert policy["script-src"] == ["'self'"], url
        assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
        assert "'unsafe-inline'" not in policy["style-src"]  # only the empty stylesheet plotly fills by CSSOM


def test_a_nonce_is_added_only_when_a_template_used_one():
    def view(request):
        return HttpResponse(f'<script nonce="{request.csp_nonce}">1</script>')

    with_nonce = ContentSecurityPolicyMiddleware(view)(RequestFactory().get("/"))
    nonce = re.search(r'nonce="([^"]+)"', with_nonce.content.decode()).group(1)
    assert directives(with_nonce["Content-Security-Policy"])["script-src"] == ["'self'", f"'nonce-{nonce}'"]
    without = ContentSecurityPolicyMiddleware(lambda request: HttpResponse("plain"))(RequestFactory().get("/"))
    assert directives(without["Content-Security-Policy"])["script-src"] == ["'self'"]


def test_no_template_has_an_inline_script_or_an_inline_event_handler():
    offenders = []
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            if "src=" not in tag and 'type="application/json"' not in tag:
                offenders.append(f"{template.relative_to(TEMPLATES)}: {tag}")
        offenders += [f"{template.relative_to(TEMPLATES)}: {h}" for h in re.findall(r"\son[a-z]+=\"", text)]
    assert not offenders, offenders
