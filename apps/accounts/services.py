"""Writes for teams, memberships, council seats and API tokens. Each writes one audit event."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.accounts.models import ApiToken, CouncilSeat, Membership, Role, Team, TokenScope
from apps.audit.services import audit_record

User = get_user_model()
TOKEN_MAX_DAYS = 365


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def team_create(*, name: str, slug: str | None = None, description: str = "", owner=None) -> Team:
    slug = slug or slugify(name)
    if not slug:
        raise ValidationError({"name": "A team needs a name made of letters or digits."})
    if Team.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"A team with the slug {slug!r} already exists."})
    team = Team.objects.create(name=name, slug=slug, description=description)
    audit_record(action="team.create", obj=team, changes={"name": name, "slug": slug})
    if owner is not None:
        membership_set(team=team, user=owner, role=Role.OWNER)
    return team


@transaction.atomic
def membership_set(*, team: Team, user, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; choose one of {', '.join(Role.values)}."})
    membership, created = Membership.objects.select_for_update().get_or_create(
        team=team, user=user, defaults={"role": role}
    )
    before = None if created else membership.role
    if not created and membership.role != role:
        if membership.role == Role.OWNER and _owner_count(team) == 1:
            raise ValidationError({"role": "A team must keep at least one owner."})
        membership.role = role
        membership.save(update_fields=["role"])
    if created or before != role:
        audit_record(action="team.member.set", obj=team, changes={"user": user.username, "role": [before, role]})
    return membership


def _owner_count(team: Team) -> int:
    return Membership.objects.filter(team=team, role=Role.OWNER).count()


@transaction.atomic
def membership_remove(*, team: Team, user) -> None:
    membership = Membership.objects.select_for_update().filter(team=team, user=user).first()
    if membership is None:
        return
    if membership.role == Role.OWNER and _owner_count(team) == 1:
        raise ValidationError("A team must keep at least one owner.")
    membership.delete()
    audit_record(action="team.member.remove", obj=team, changes={"user": user.username, "role": [membership.role, None]})


@transaction.atomic
def council_seat_set(*, user, seat: str, seated: bool = True) -> None:
    seat = CouncilSeat(seat)
    group, _ = Group.objects.get_or_create(name=seat.group_name)
    already = user.groups.filter(pk=group.pk).exists()
    if seated and not already:
        user.groups.add(group)
    elif not seated and already:
        user.groups.remove(group)
    else:
        return
    audit_record(action="council.seat.set", obj=user, object_type="auth.user",
                 changes={"seat": seat.value, "seated": [already, seated]})


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


@transaction.atomic
def api_token_create(*, team: Team, user, name: str, scope: str = TokenScope.READ,
                     days: int | None = 90) -> IssuedToken:
    errors = {}
    if not name.strip():
        errors["name"] = "Give the token a name that says where it is used."
    if scope not in TokenScope.values:
        errors["scope"] = f"Unknown scope {scope!r}; choose one of {', '.join(TokenScope.values)}."
    if days is not None and not 1 <= days <= TOKEN_MAX_DAYS:
        errors["days"] = f"Expiry must be between 1 and {TOKEN_MAX_DAYS} days."
    if not Membership.objects.filter(team=team, user=user).exists():
        errors["team"] = "You can only create tokens for a team you belong to."
    if errors:
        raise ValidationError(errors)
    key_id = secrets.token_hex(4)
    raw = f"{ApiToken.PREFIX}{key_id}_{secrets.token_urlsafe(30)}"
    token = ApiToken.objects.create(
        team=team, user=user, name=name.strip(), scope=scope, key_id=key_id, key_hash=hash_token(raw),
        expires_at=timezone.now() + dt.timedelta(days=days) if days else None,
    )
    audit_record(action="api_token.create", obj=token, team=team,
                 changes={"name": token.name, "scope": scope, "expires_at": token.expires_at})
    return IssuedToken(token=token, secret=raw)


@transaction.atomic
def api_token_revoke(*, token: ApiToken) -> ApiToken:
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(action="api_token.revoke", obj=token, team=token.team_id)
    return token


def api_token_touch(token: ApiToken) -> None:
    """Record last use at most once a minute: no write on every request of a busy client."""
    now = timezone.now()
    stale = now - dt.timedelta(seconds=60)
    ApiToken.objects.filter(pk=token.pk).exclude(last_used_at__gt=stale).update(last_used_at=now)
