"""Content-Security-Policy on every response (Django 5.2 has none built in; ADR 0008).

The policy is `settings.CONTENT_SECURITY_POLICY`: directive -> sources. No inline script runs anywhere: page
behaviour lives in static files (portal.js, charts.js) and data in <script type="application/json"> blocks.
Where a template really needs an inline script it uses `{{ request.csp_nonce }}`; the nonce is made only when
read, and only then added to script-src.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.utils.functional import SimpleLazyObject

HEADER = "Content-Security-Policy"


def policy_header(policy: dict[str, list[str]], nonce: str | None = None) -> str:
    directives = []
    for name, sources in policy.items():
        if nonce and name == "script-src":
            sources = [*sources, f"'nonce-{nonce}'"]
        directives.append(" ".join([name, *sources]))
    return "; ".join(directives)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        made: list[str] = []

        def make_nonce() -> str:
            made.append(secrets.token_urlsafe(16))
            return made[0]

        request.csp_nonce = SimpleLazyObject(make_nonce)
        response = self.get_response(request)
        if HEADER not in response:  # a view may set its own (stricter) policy
            response[HEADER] = policy_header(settings.CONTENT_SECURITY_POLICY, made[0] if made else None)
        return response
