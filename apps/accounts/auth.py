"""Bearer-token authentication for /api/v1/: a missing, malformed, wrong, expired or revoked token says which.

portal/api.py (PortalAuth) turns a TokenRejected into a JSON 401 `{"detail": ..., "reason": ...}`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import connection

from apps.accounts import token_cache
from apps.accounts.models import ApiToken, Membership, Team
from apps.accounts.services import api_token_touch, hash_token
from apps.core.rows import columns_plan, row_instances

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
    key_hash = hash_token(raw)
    token = token_cache.cached_token(key_hash, _token_with_user_team_and_role)
    if token is None:
        raise TokenRejected(TokenRejection("unknown", "This token is not valid: no token has this secret."))
    if token.revoked_at is not None:
        raise TokenRejected(TokenRejection("revoked", f"This token was revoked on {token.revoked_at:%Y-%m-%d %H:%M} UTC."))
    if token.is_expired:
        raise TokenRejected(TokenRejection("expired", f"This token expired on {token.expires_at:%Y-%m-%d %H:%M} UTC."))
    if not token.user.is_active or token.member_role is None:
        raise TokenRejected(TokenRejection(
            "inactive", "The token's owner is no longer an active member of its team."))
    if api_token_touch(token):
        token_cache.remember(key_hash, token)  # else every cached request would try the UPDATE again
    return token


@functools.cache
def _lookup_plan() -> tuple[str, list]:
    """One SQL statement for the token, its user and team, and the user's role in that team.

    Every API request runs it, and building the same statement through the ORM cost ~2.5 ms of a ~4.6 ms
    resolve request; the text is made once per process from the models' own fields, so it follows them.
    """
    user_model = get_user_model()
    columns, plan = columns_plan([(ApiToken, "t"), (user_model, "u"), (Team, "m")])
    role = (f'(SELECT r."role" FROM "{Membership._meta.db_table}" r '
            f'WHERE r."team_id" = t."team_id" AND r."user_id" = t."user_id" LIMIT 1)')
    sql = (f'SELECT {columns}, {role} FROM "{ApiToken._meta.db_table}" t '
           f'JOIN "{user_model._meta.db_table}" u ON u."{user_model._meta.pk.column}" = t."user_id" '
           f'JOIN "{Team._meta.db_table}" m ON m."id" = t."team_id" WHERE t."key_hash" = %s')
    return sql, plan


def _token_with_user_team_and_role(key_hash: str) -> ApiToken | None:
    sql, plan = _lookup_plan()
    with connection.cursor() as cursor:
        cursor.execute(sql, [key_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    token, user, team = row_instances(plan, row)
    token.user, token.team = user, team
    token.member_role = row[-1]
    return token
