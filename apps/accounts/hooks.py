"""What accounts registers at start-up (the one place; AccountsConfig.ready() calls `register()`).

- links from audit events to teams and API tokens (apps/audit/links.py);
- the "API tokens" counter on the team page (its own registry, apps/accounts/ownership.py);
- the signals that clear the token cache when a token, membership, user or team changes.
"""

from __future__ import annotations

from apps.accounts import links, token_cache
from apps.accounts.ownership import register_owned_counter
from apps.audit.links import register_object_link


def register() -> None:
    register_object_link("accounts.team", links.team_urls)
    register_object_link("accounts.apitoken", links.token_urls)
    register_owned_counter("API tokens", lambda team: team.api_tokens.filter(revoked_at__isnull=True).count())
    token_cache.connect_signals()
