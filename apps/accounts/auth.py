"""Bearer-token authentication for /api/v1/: a missing, wrong, expired or revoked token says which."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from apps.accounts.models import ApiToken, Membership
from apps.accounts.services import api_token_touch, hash_token

_TOKEN_SHAPE = re.compile(r"^gp_([0-9a-f]{8})_[A-Za-z0-9_-]{20,}$")


@dataclass(frozen=True)
class TokenRejection:
    reason: str  # missing | malformed | unknown | expired | revoked | inactive
    message: str


class TokenRejected(Exception):
    def __init__(self, rejection: TokenRejection):
        super().__init__(rejection.message)
        self.rejection = rejection


def parse_authorization(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return ""
    return value.strip()


def authenticate_token(raw: str | None) -> ApiToken:
    """Return the active token for a raw secret, or raise TokenRejected naming the reason."""
    if raw is None:
        raise TokenRejected(TokenRejection("missing", "Authentication required: send 'Authorization: Bearer <token>'."))
    match = _TOKEN_SHAPE.match(raw)
    if not match:
        raise TokenRejected(TokenRejection("malformed", "The Authorization header does not hold a portal token (gp_…)."))
    token = ApiToken.objects.select_related("user", "team").filter(key_id=match.group(1)).first()
    if token is None or not hmac.compare_digest(token.key_hash, hash_token(raw)):
        raise TokenRejected(TokenRejection("unknown", "This token is not valid."))
    if token.revoked_at is not None:
        raise TokenRejected(TokenRejection("revoked", f"This token was revoked on {token.revoked_at:%Y-%m-%d %H:%M} UTC."))
    if token.is_expired:
        raise TokenRejected(TokenRejection("expired", f"This token expired on {token.expires_at:%Y-%m-%d %H:%M} UTC."))
    if not token.user.is_active or not Membership.objects.filter(team_id=token.team_id, user_id=token.user_id).exists():
        raise TokenRejected(TokenRejection("inactive", "The token's owner is no longer an active member of its team."))
    api_token_touch(token)
    return token
