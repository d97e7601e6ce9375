"""Writes for teams, memberships, council seats, passwords and API tokens. Each writes one audit event.

Services validate (ValidationError keyed by field), change rows in one transaction and record the audit
event in that same transaction. They do not check permissions: views and API endpoints do, before calling.
`actor` is who acts (a User, an ApiToken, or None for "whoever the request context names", i.e. the system
in commands and tasks); it is only recorded, never trusted for access.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.accounts.models import ApiToken, CouncilSeat, Membership, Role, Team, TokenScope
from apps.accounts.permissions import forget_cached_roles, scope_allowed_for_role
from apps.audit.services import audit_record

TOKEN_MAX_DAYS = 365
TOKEN_DEFAULT_DAYS = 90
TOUCH_INTERVAL = dt.timedelta(seconds=60)
RESERVED_SLUGS = frozenset({"new"})  # URL words under /accounts/teams/


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _by(actor) -> dict:
    """audit_record keywords naming the actor; {} lets audit_record read the request context."""
    if actor is None:
        return {}
    if isinstance(actor, ApiToken):
        return {"token": actor, "user": actor.user}
    return {"user": actor}


def _lock_team(team: Team) -> Team:
    """Serialise membership changes of one team, so two owners cannot both step down at once."""
    return Team.objects.select_for_update().get(pk=team.pk)


@transaction.atomic
def team_create(*, name: str, slug: str | None = None, description: str = "", owner=None, actor=None) -> Team:
    """Create a team (and its first owner, if given) with one `team.create` event."""
    name = (name or "").strip()
    slug = (slug or "").strip() or slugify(name)
    errors = {}
    if not name:
        errors["name"] = "Give the team a name."
    elif len(name) > Team._meta.get_field("name").max_length:
        errors["name"] = f"Keep the name under {Team._meta.get_field('name').max_length} characters."
    if name and not slug:
        errors["slug"] = "The name has no letters or digits to make a slug from: type a slug."
    elif slug:
        try:
            validate_slug(slug)
        except ValidationError:
            errors["slug"] = "Use only letters, digits, hyphens and underscores in the slug."
        else:
            if len(slug) > Team._meta.get_field("slug").max_length:
                errors["slug"] = f"Keep the slug under {Team._meta.get_field('slug').max_length} characters."
            elif slug in RESERVED_SLUGS:
                errors["slug"] = f"{slug!r} is reserved: choose another slug."
            elif Team.objects.filter(slug=slug).exists():
                errors["slug"] = f"A team with the slug {slug!r} already exists."
    if owner is not None and not owner.is_active:
        errors["owner"] = f"{owner.get_username()} is deactivated and cannot own a team."
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            team = Team.objects.create(name=name, slug=slug, description=description or "")
    except IntegrityError:  # a concurrent create took the slug between the check and the insert
        raise ValidationError({"slug": f"A team with the slug {slug!r} already exists."})
    changes = {"name": name, "slug": slug}
    if owner is not None:
        Membership.objects.create(team=team, user=owner, role=Role.OWNER)
        forget_cached_roles(owner)
        changes["owner"] = owner.get_username()
    audit_record(action="team.create", obj=team, changes=changes, **_by(actor))
    return team


def _owner_count(team: Team) -> int:
    return Membership.objects.filter(team=team, role=Role.OWNER).count()


@transaction.atomic
def membership_set(*, team: Team, user, role: str, actor=None) -> Membership:
    """Add a member with a role, or change their role. No change, no event."""
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; choose one of {', '.join(Role.values)}."})
    team = _lock_team(team)
    membership = Membership.objects.filter(team=team, user=user).first()
    if membership is None:
        if not user.is_active:
            raise ValidationError({"user": f"{user.get_username()} is deactivated and cannot join a team."})
        membership = Membership.objects.create(team=team, user=user, role=role)
        before = None
        action = "team.member.add"
    elif membership.role == role:
        return membership
    else:
        before = membership.role
        if before == Role.OWNER and _owner_count(team) == 1:
            raise ValidationError({"role": f"{user.get_username()} is the last owner of {team.name}: "
                                           "make someone else an owner first."})
        membership.role = role
        membership.save(update_fields=["role"])
        action = "team.member.change"
    forget_cached_roles(user)
    audit_record(action=action, obj=team, changes={"user": user.get_username(), "user_id": user.pk,
                                                   "role": [before, role]}, **_by(actor))
    return membership


@transaction.atomic
def membership_remove(*, team: Team, user, actor=None) -> None:
    """Remove a member; their tokens for this team are revoked with them (listed in the one event)."""
    team = _lock_team(team)
    membership = Membership.objects.filter(team=team, user=user).first()
    if membership is None:
        raise ValidationError({"user": f"{user.get_username()} is not a member of {team.name}."})
    if membership.role == Role.OWNER and _owner_count(team) == 1:
        raise ValidationError({"user": f"{user.get_username()} is the last owner of {team.name}: "
                                       "make someone else an owner first."})
    membership.delete()
    tokens = ApiToken.objects.filter(team=team, user=user, revoked_at__isnull=True)
    revoked = sorted(tokens.values_list("key_id", flat=True))
    tokens.update(revoked_at=timezone.now())
    forget_cached_roles(user)
    audit_record(action="team.member.remove", obj=team,
                 changes={"user": user.get_username(), "user_id": user.pk, "role": [membership.role, None],
                          "revoked_tokens": [f"{ApiToken.PREFIX}{key_id}" for key_id in revoked]},
                 **_by(actor))


@transaction.atomic
def council_seat_set(*, user, seat: str, seated: bool = True, actor=None) -> None:
    """Give or take a council seat (a group). No change, no event."""
    if seat not in CouncilSeat.values:
        raise ValidationError({"seat": f"Unknown council seat {seat!r}; choose one of {', '.join(CouncilSeat.values)}."})
    seat = CouncilSeat(seat)
    group, _ = Group.objects.get_or_create(name=seat.group_name)
    already = user.groups.filter(pk=group.pk).exists()
    if seated == already:
        return
    if seated:
        user.groups.add(group)
    else:
        user.groups.remove(group)
    forget_cached_roles(user)
    audit_record(action="council.seat.set", obj=user, object_repr=user.get_username(),
                 changes={"seat": seat.value, "seated": [already, seated]}, **_by(actor))


@transaction.atomic
def user_password_change(*, user, new_password: str, actor=None) -> None:
    """Set a new password (already validated by the form) and record that it changed, never what to."""
    user.set_password(new_password)
    user.save(update_fields=["password"])
    audit_record(action="user.password.change", obj=user, object_repr=user.get_username(), **_by(actor))


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def _clean_token_input(*, team: Team, user, name: str, scope: str, days) -> dict:
    errors = {}
    name = (name or "").strip()
    max_name = ApiToken._meta.get_field("name").max_length
    if not name:
        errors["name"] = "Give the token a name that says where it is used, e.g. 'ci-pipeline'."
    elif len(name) > max_name:
        errors["name"] = f"Keep the name under {max_name} characters."
    if scope not in TokenScope.values:
        errors["scope"] = f"Unknown scope {scope!r}; choose one of {', '.join(TokenScope.values)}."
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= TOKEN_MAX_DAYS:
        errors["days"] = f"Every token expires: give a number of days between 1 and {TOKEN_MAX_DAYS}."
    role = Membership.objects.filter(team=team, user=user).values_list("role", flat=True).first()
    if role is None or not user.is_active:
        errors["team"] = f"{user.get_username()} is not a member of {team.name}: tokens are for your own teams."
    elif "scope" not in errors and not scope_allowed_for_role(scope, role):
        allowed = [s for s in TokenScope.values if scope_allowed_for_role(s, role)]
        errors["scope"] = (f"As {role} of {team.name}, {user.get_username()} can create "
                           f"{' or '.join(allowed)} tokens only.")
    if errors:
        raise ValidationError(errors)
    return {"name": name}


@transaction.atomic
def api_token_create(*, team: Team, user, name: str, scope: str = TokenScope.READ,
                     days: int = TOKEN_DEFAULT_DAYS, actor=None) -> IssuedToken:
    """Issue a token for `user` in `team`. Only the SHA-256 is stored; the secret is returned once."""
    cleaned = _clean_token_input(team=team, user=user, name=name, scope=scope, days=days)
    expires_at = timezone.now() + dt.timedelta(days=days)
    for _attempt in range(5):
        key_id = secrets.token_hex(4)  # public part: shown in lists and logs
        raw = f"{ApiToken.PREFIX}{key_id}_{secrets.token_urlsafe(30)}"
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(team=team, user=user, name=cleaned["name"], scope=scope,
                                                key_id=key_id, key_hash=hash_token(raw), expires_at=expires_at)
            break
        except IntegrityError:  # key_id collision (32 bits): draw again
            continue
    else:  # pragma: no cover - five collisions in a row do not happen
        raise RuntimeError("Could not draw a unique token id.")
    audit_record(action="api_token.create", obj=token, team=team,
                 changes={"name": token.name, "user": user.get_username(), "scope": scope,
                          "key": f"{ApiToken.PREFIX}{key_id}", "expires_at": expires_at},
                 **_by(actor))
    return IssuedToken(token=token, secret=raw)


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor=None) -> ApiToken:
    """Revoke a token now. Revoking a revoked token changes nothing and records nothing."""
    token = ApiToken.objects.select_for_update().select_related("user").get(pk=token.pk)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(action="api_token.revoke", obj=token, team=token.team_id,
                     changes={"name": token.name, "user": token.user.get_username(),
                              "key": f"{ApiToken.PREFIX}{token.key_id}"}, **_by(actor))
    return token


def api_token_touch(token: ApiToken) -> bool:
    """Record last use at most once a minute: a busy client causes one UPDATE a minute, not one per call.

    Telemetry, not a state change: no audit event. True when this call stamped `token.last_used_at`.
    """
    now = timezone.now()
    stale = now - TOUCH_INTERVAL
    if token.last_used_at is not None and token.last_used_at > stale:
        return False
    # Conditional UPDATE: of concurrent requests in the same minute, one writes.
    ApiToken.objects.filter(pk=token.pk).exclude(last_used_at__gt=stale).update(last_used_at=now)
    token.last_used_at = now
    return True


@transaction.atomic
def sign_in_blocked_record(*, scope: str, username: str | None, address: str | None, failures: int,
                           seconds: int) -> None:
    """The moment an account or a client address becomes throttled (apps/accounts/throttle.py): one event.

    scope: "account" (sign-ins of `username` locked), "address" (sign-ins from `address` blocked) or
    "token-address" (bearer tokens from `address` refused with 429).
    """
    changes = {"failures": failures, "seconds": seconds, "address": address}
    if scope == "account":
        user = get_user_model().objects.filter(username__iexact=username or "").first()
        audit_record(action="user.login.lockout", obj=user, object_type=None if user else "auth.user",
                     object_repr=username, changes={**changes, "username": username})
    elif scope == "address":
        audit_record(action="login.address.throttle", object_type="client.address", object_repr=address or "unknown",
                     changes={**changes, "last_username": username})
    else:
        audit_record(action="api_token.throttle", object_type="client.address", object_repr=address or "unknown",
                     changes=changes)
