"""Bearer-token authentication for /api/v1/: a missing, malformed, wrong, expired or revoked token says which.

portal/api.py (PortalAuth) turns a TokenRejected into a JSON 401 `{"detail": ..., "reason": ...}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import OuterRef, Subquery

from apps.accounts.models import ApiToken, Membership
from apps.accounts.services import api_token_touch, hash_token

_TOKEN_SHAPE = re.compile(r"^gp_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}$")

REASONS = ("missing", "malformed", "unknown", "revoked", "expired", "inactive")


@dataclass(frozen=True)
class TokenRejection:
    reason: str  # one of REASONS
    message: str


class TokenRejected(Exception):
    def __init__(self, rejection: TokenRejection):
        super().__init__(rejection.message)
        self.rejection = rejection


def parse_authorization(header: str | None) -> str | None:
    """None when no Authorization header was sent; "" when it is not `Bearer <value>`; else the value."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return ""
    return value.strip()


def authenticate_token(raw: str | None) -> ApiToken:
    """Return the active token for a raw secret, or raise TokenRejected naming the reason."""
    if raw is None:
        raise TokenRejected(TokenRejection("missing", "Authentication required: send 'Authorization: Bearer <token>'."))
    if not _TOKEN_SHAPE.match(raw):
        raise TokenRejected(TokenRejection(
            "malformed", "The Authorization header does not hold a portal token: expected 'Bearer gp_…'."))
    # Look up by the SHA-256 of the whole secret (unique index): a guess reveals nothing about real tokens.
    # One query: the token, its user and team, and the user's current role in that team.
    role = Membership.objects.filter(team_id=OuterRef("team_id"), user_id=OuterRef("user_id")).values("role")[:1]
    token = (ApiToken.objects.select_related("user", "team").annotate(member_role=Subquery(role))
             .filter(key_hash=hash_token(raw)).first())
    if token is None:
        raise TokenRejected(TokenRejection("unknown", "This token is not valid: no token has this secret."))
    if token.revoked_at is not None:
        raise TokenRejected(TokenRejection("revoked", f"This token was revoked on {token.revoked_at:%Y-%m-%d %H:%M} UTC."))
    if token.is_expired:
        raise TokenRejected(TokenRejection("expired", f"This token expired on {token.expires_at:%Y-%m-%d %H:%M} UTC."))
    if not token.user.is_active or token.member_role is None:
        raise TokenRejected(TokenRejection(
            "inactive", "The token's owner is no longer an active member of its team."))
    api_token_touch(token)
    return token
