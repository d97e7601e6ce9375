"""Writes for gateway keys: create, rotate, change limits, revoke; the retention sweep of sampled bodies; expiry
notices. One audit event per change of a key.

Who may: owners of the key's team and admins create, rotate, change and revoke keys; engineers of the team
may create keys for their team (Action.CHANGE) and revoke the keys they created; viewers may not write.
`actor=None` is the system (management commands, run by whoever holds the server), which is not checked.
Every change moves the gateway's stamp after commit (apps/gateway/keys.py), so every gateway process sees it
on its next request. The secret is returned once (IssuedKey.secret) and never stored, logged or audited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Membership, Role, Team
from apps.accounts.permissions import Action, can, require, user_of
from apps.audit.services import audit_record
from apps.gateway import keys
from apps.gateway.models import (
    EventContent,
    GatewayBody,
    GatewayKey,
    Injection,
    InputPii,
    OutputScan,
    SliHour,
    SliMinute,
)
from apps.notifications.services import notify

GUARD_FIELDS = {"guard_input_pii": InputPii, "guard_injection": Injection, "guard_output": OutputScan,
                "guard_event_content": EventContent}
LIMIT_FIELDS = ("requests_per_minute", "requests_per_day", "tokens_per_minute", "tokens_per_day")
MAX_OVERLAP = timedelta(days=30)
DEFAULT_OVERLAP = timedelta(hours=24)
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,199}$")
_MAX_LIMIT = 2_000_000_000
MAX_CACHE_TTL = 7 * 86_400
CACHE_FIELDS = ("cache_enabled", "cache_ttl_seconds", "cache_sampled")
# What a key's successor (rotation) or twin (a red-team campaign's key) copies: everything but name and secret.
SETTINGS_FIELDS = ("team_id", "feature", "use_case_id", "allowed_aliases", *LIMIT_FIELDS, "dollars_per_day",
                   *CACHE_FIELDS, "store_bodies", "body_sample_percent", "expires_at", *GUARD_FIELDS)


@dataclass
class IssuedKey:
    key: GatewayKey
    secret: str  # shown once, never stored


def _clean_limits(values: dict) -> dict:
    cleaned, errors = {}, {}
    for name in LIMIT_FIELDS:
        value = values.get(name)
        if value in (None, ""):
            cleaned[name] = None
            continue
        try:
            number = int(str(value).strip())
            if not 1 <= number <= _MAX_LIMIT:
                raise ValueError
        except (TypeError, ValueError):
            errors[name] = f"A whole number from 1 to {_MAX_LIMIT:,}, or empty for no limit."
            continue
        cleaned[name] = number
    dollars = values.get("dollars_per_day")
    if dollars in (None, ""):
        cleaned["dollars_per_day"] = None
    else:
        try:
            amount = Decimal(str(dollars).strip())
            if not amount.is_finite() or amount <= 0 or amount >= Decimal("1e10"):
                raise InvalidOperation
            cleaned["dollars_per_day"] = amount.quantize(Decimal("0.01"))
        except (InvalidOperation, ValueError):
            errors["dollars_per_day"] = "A positive amount of dollars, or empty for no limit."
    if errors:
        raise ValidationError(errors)
    return cleaned


def _clean_cache(values: dict) -> dict:
    """The response cache's policy (ADR 0074): on/off, a TTL in seconds (empty: the default), sampled too."""
    cleaned = {flag: bool(values[flag]) for flag in ("cache_enabled", "cache_sampled") if flag in values}
    if "cache_ttl_seconds" in values:
        ttl = values["cache_ttl_seconds"]
        if ttl in (None, ""):
            cleaned["cache_ttl_seconds"] = None
        else:
            try:
                ttl = int(str(ttl).strip())
                if not 1 <= ttl <= MAX_CACHE_TTL:
                    raise ValueError
            except (TypeError, ValueError):
                raise ValidationError({"cache_ttl_seconds": f"Seconds from 1 to {MAX_CACHE_TTL:,} (7 days), or "
                                                            "empty for the gateway's default."})
            cleaned["cache_ttl_seconds"] = ttl
    return cleaned


def _clean_aliases(aliases) -> list[str]:
    if aliases in (None, ""):
        return []
    if isinstance(aliases, str):
        aliases = [a for a in re.split(r"[\s,]+", aliases) if a]
    out: list[str] = []
    for alias in aliases:
        if not isinstance(alias, str) or not _ALIAS.match(alias):
            raise ValidationError({"allowed_aliases": f"{alias!r} is not a model alias name (letters, digits, "
                                                      "and . _ : / @ -)."})
        if alias not in out:
            out.append(alias)
    return out


def _clean_sample_percent(value) -> int:
    try:
        percent = int(str(value).strip())
        if not 0 <= percent <= 100:
            raise ValueError
    except (TypeError, ValueError):
        raise ValidationError({"body_sample_percent": "A whole percentage from 0 to 100."})
    return percent


def _clean_options(values: dict) -> dict:
    """The body options among `values`: store bodies, and the share of bodies sampled (the cache's: _clean_cache)."""
    options = {"store_bodies": bool(values["store_bodies"])} if "store_bodies" in values else {}
    if "body_sample_percent" in values:
        options["body_sample_percent"] = _clean_sample_percent(values["body_sample_percent"])
    return options


def _clean_key_fields(*, name: str, feature: str, use_case_id, expires_at) -> dict:
    errors = {}
    name, feature = (name or "").strip(), (feature or "").strip()
    if not name:
        errors["name"] = "Name the key after where it is used, e.g. 'support-bot-prod'."
    elif len(name) > 100:
        errors["name"] = "Keep the name under 100 characters."
    if not feature:
        errors["feature"] = "Name the feature this key's traffic is for: it is how its cost is attributed."
    elif len(feature) > 120:
        errors["feature"] = "Keep the feature under 120 characters."
    if use_case_id in ("", None):
        use_case_id = None
    else:
        try:
            use_case_id = int(str(use_case_id).strip())
            if use_case_id < 1:
                raise ValueError
        except (TypeError, ValueError):
            errors["use_case_id"] = "A use case id is a positive whole number."
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = "The expiry must be in the future."
    if errors:
        raise ValidationError(errors)
    return {"name": name, "feature": feature, "use_case_id": use_case_id, "expires_at": expires_at}


def _check(actor, action: Action, obj) -> None:
    if actor is not None:
        require(actor, action, obj)


def _bump_after_commit() -> None:
    transaction.on_commit(keys.stamp_bump)


def _issue(**fields) -> IssuedKey:
    for _attempt in range(5):
        key_id, secret = keys.new_secret()
        try:
            with transaction.atomic():
                key = GatewayKey.objects.create(key_id=key_id, key_hash=keys.hash_secret(secret), **fields)
            return IssuedKey(key=key, secret=secret)
        except IntegrityError:  # key_id collision (32 bits): draw again
            continue
    raise RuntimeError("Could not draw a unique key id.")  # pragma: no cover


def _limits_of(key: GatewayKey) -> dict:
    return {name: (str(getattr(key, name)) if getattr(key, name) is not None else None)
            for name in (*LIMIT_FIELDS, "dollars_per_day")}


@transaction.atomic
def gateway_key_create(*, team: Team, name: str, feature: str, use_case_id=None, allowed_aliases=None,
                       expires_at: datetime | None = None, cache_enabled: bool = False, cache_ttl_seconds=None,
                       cache_sampled: bool = False, store_bodies: bool = False, body_sample_percent=100, actor=None,
                       **limits) -> IssuedKey:
    """Issue a key for `team`. Engineers, owners and admins may; the secret is returned once."""
    _check(actor, Action.CHANGE, team)
    unknown = set(limits) - {*LIMIT_FIELDS, "dollars_per_day"}
    if unknown:
        raise TypeError(f"gateway_key_create() got unexpected keyword arguments {sorted(unknown)}")
    errors = {}
    cleaned = {}
    for step in (lambda: _clean_key_fields(name=name, feature=feature, use_case_id=use_case_id,
                                           expires_at=expires_at),
                 lambda: _clean_limits(limits),
                 lambda: {"allowed_aliases": _clean_aliases(allowed_aliases)},
                 lambda: _clean_cache({"cache_enabled": cache_enabled, "cache_ttl_seconds": cache_ttl_seconds,
                                       "cache_sampled": cache_sampled}),
                 lambda: {"body_sample_percent": _clean_sample_percent(body_sample_percent)}):
        try:
            cleaned.update(step())
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    issued = _issue(team=team, created_by=user_of(actor), store_bodies=bool(store_bodies), **cleaned)
    key = issued.key
    audit_record(action="gateway_key.create", obj=key, team=team, actor=actor,
                 changes={"name": key.name, "key": key.prefix, "feature": key.feature,
                          "use_case_id": key.use_case_id, "allowed_aliases": key.allowed_aliases,
                          "limits": _limits_of(key), "expires_at": key.expires_at,
                          **{f: getattr(key, f) for f in CACHE_FIELDS}, "store_bodies": key.store_bodies,
                          "body_sample_percent": key.body_sample_percent})
    _bump_after_commit()
    return issued


def _locked(key: GatewayKey) -> GatewayKey:
    return GatewayKey.objects.select_for_update().get(pk=key.pk)


@transaction.atomic
def gateway_key_rotate(*, key: GatewayKey, overlap: timedelta = DEFAULT_OVERLAP, actor=None) -> IssuedKey:
    """A new secret with the same settings; the old one keeps working for `overlap`, then stops."""
    _check(actor, Action.MANAGE, key)
    key = _locked(key)
    if key.state() not in ("active",):
        raise ValidationError({"key": f"Only an active key can be rotated; this one is {key.state()}."})
    if not timedelta(0) <= overlap <= MAX_OVERLAP:
        raise ValidationError({"overlap": f"The overlap is between 0 and {MAX_OVERLAP.days} days."})
    now = timezone.now()
    copied = {f: getattr(key, f) for f in ("name", *SETTINGS_FIELDS)}
    key.overlap_ends_at = now + overlap
    key.save(update_fields=["overlap_ends_at"])
    issued = _issue(rotated_from=key, created_by=user_of(actor), **copied)
    audit_record(action="gateway_key.rotate", obj=issued.key, actor=actor,
                 changes={"name": key.name, "old_key": key.prefix, "new_key": issued.key.prefix,
                          "old_key_works_until": key.overlap_ends_at})
    _bump_after_commit()
    return issued


@transaction.atomic
def gateway_key_twin(*, key: GatewayKey, name: str, actor=None) -> IssuedKey:
    """A new key with exactly `key`'s settings (team, feature, use case, aliases, limits, budget, cache, bodies,
    guardrails, expiry) and its own secret, for a client that must go through the front door as `key`'s
    application does without holding its secret (a red-team campaign, ADR 0119). The caller revokes it when
    done. Whoever may create keys for the team may; `key` must be active."""
    _check(actor, Action.CHANGE, key)
    key = _locked(key)
    if not key.is_active:
        raise ValidationError({"key": f"Key {key.prefix} is {key.state()}: it cannot be copied."})
    name = (name or "").strip()[:100] or key.name
    issued = _issue(name=name, created_by=user_of(actor), **{f: getattr(key, f) for f in SETTINGS_FIELDS})
    audit_record(action="gateway_key.create", obj=issued.key, team=key.team, actor=actor,
                 changes={"name": name, "key": issued.key.prefix, "twin_of": key.prefix,
                          "limits": _limits_of(issued.key)})
    _bump_after_commit()
    return issued


@transaction.atomic
def gateway_key_update(*, key: GatewayKey, actor=None, **values) -> GatewayKey:
    """Change limits, allowed aliases, expiry or options. Owners and admins may."""
    _check(actor, Action.MANAGE, key)
    key = _locked(key)
    allowed = {*LIMIT_FIELDS, "dollars_per_day", "allowed_aliases", "expires_at", *CACHE_FIELDS,
               "store_bodies", "body_sample_percent", "name"}
    unknown = set(values) - allowed
    if unknown:
        raise TypeError(f"gateway_key_update() got unexpected keyword arguments {sorted(unknown)}")
    if key.revoked_at is not None:
        raise ValidationError({"key": "This key is revoked; issue a new one."})
    errors, new = {}, {}
    limit_values = {k: v for k, v in values.items() if k in (*LIMIT_FIELDS, "dollars_per_day")}
    try:
        new.update(_clean_limits({**{k: getattr(key, k) for k in (*LIMIT_FIELDS, "dollars_per_day")},
                                  **limit_values}))
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if "allowed_aliases" in values:
        try:
            new["allowed_aliases"] = _clean_aliases(values["allowed_aliases"])
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if "name" in values or "expires_at" in values:
        try:
            cleaned = _clean_key_fields(name=values.get("name", key.name), feature=key.feature,
                                        use_case_id=key.use_case_id, expires_at=values.get("expires_at"))
            new["name"] = cleaned["name"]
            if "expires_at" in values:
                new["expires_at"] = cleaned["expires_at"]
        except ValidationError as exc:
            errors.update(exc.message_dict)
    for clean in (_clean_cache, _clean_options):
        try:
            new.update(clean(values))
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    before = {k: getattr(key, k) for k in new}
    changed = {k: v for k, v in new.items() if before[k] != v}
    if not changed:
        return key
    for name, value in changed.items():
        setattr(key, name, value)
    key.save(update_fields=list(changed))
    audit_record(action="gateway_key.update", obj=key, actor=actor,
                 changes={"key": key.prefix, **{k: [_plain(before[k]), _plain(v)] for k, v in changed.items()}})
    _bump_after_commit()
    return key


def _plain(value):
    return str(value) if isinstance(value, Decimal) else value


def may_revoke(actor, key: GatewayKey) -> bool:
    """Owners and admins revoke any key of the team; an engineer the keys they created."""
    if can(actor, Action.MANAGE, key):
        return True
    user = user_of(actor)
    return user is not None and key.created_by_id == user.pk and can(actor, Action.CHANGE, key)


@transaction.atomic
def gateway_key_revoke(*, key: GatewayKey, actor=None) -> GatewayKey:
    """Stop a key now. Revoking a revoked key changes nothing and records nothing."""
    if actor is not None and not may_revoke(actor, key):
        raise PermissionDenied("You may not revoke this gateway key.")
    key = _locked(key)
    if key.revoked_at is not None:
        return key
    now = timezone.now()
    key.revoked_at, key.revoked_by = now, user_of(actor)
    key.save(update_fields=["revoked_at", "revoked_by"])
    audit_record(action="gateway_key.revoke", obj=key, actor=actor, changes={"name": key.name, "key": key.prefix})
    _bump_after_commit()
    return key


def gateway_bodies_sweep(*, now: datetime | None = None) -> int:
    """Delete sampled bodies older than GATEWAY_BODY_RETENTION_DAYS (nightly; housekeeping by the system under
    a stated retention, so not audited, like the ledger's raw-event purge). Returns how many were deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.GATEWAY_BODY_RETENTION_DAYS)
    deleted, _by_model = GatewayBody.objects.filter(occurred_at__lt=cutoff).delete()
    return deleted


def gateway_sli_prune(*, now: datetime | None = None) -> int:
    """Delete per-minute SLI counts older than GATEWAY_SLI_MINUTE_RETENTION_HOURS and per-hour ones older than
    GATEWAY_SLI_HOUR_RETENTION_DAYS (hourly; housekeeping under a stated retention, so not audited). Returns how
    many rows were deleted."""
    now = now or timezone.now()
    minutes, _ = SliMinute.objects.filter(
        minute__lt=now - timedelta(hours=settings.GATEWAY_SLI_MINUTE_RETENTION_HOURS)).delete()
    hours, _ = SliHour.objects.filter(hour__lt=now - timedelta(days=settings.GATEWAY_SLI_HOUR_RETENTION_DAYS)).delete()
    return minutes + hours


@transaction.atomic
def gateway_key_guardrails_set(*, key: GatewayKey, actor=None, **policy) -> GatewayKey:
    """Change the key's guardrail policy (any of GUARD_FIELDS). Owners of the team and admins may. A use case's
    policy may still be stricter (apps/gateway/guard.py); the change applies on the next request."""
    _check(actor, Action.MANAGE, key)
    unknown = set(policy) - set(GUARD_FIELDS)
    if unknown:
        raise TypeError(f"gateway_key_guardrails_set() got unexpected keyword arguments {sorted(unknown)}")
    key = _locked(key)
    if key.revoked_at is not None:
        raise ValidationError({"key": "This key is revoked; issue a new one."})
    errors = {name: f"Choose one of: {', '.join(GUARD_FIELDS[name].values)}." for name, value in policy.items()
              if value not in GUARD_FIELDS[name].values}
    if errors:
        raise ValidationError(errors)
    changed = {name: [getattr(key, name), value] for name, value in policy.items() if getattr(key, name) != value}
    if not changed:
        return key
    for name, (_before, value) in changed.items():
        setattr(key, name, value)
    key.save(update_fields=list(changed))
    audit_record(action="gateway_key.guardrails", obj=key, actor=actor, changes={"key": key.prefix, **changed})
    _bump_after_commit()
    return key


# --- expiry notices ----------------------------------------------------------------------------------------


def expiry_thresholds() -> list[int]:
    """GATEWAY_KEY_EXPIRY_NOTICE_DAYS as whole days, largest first (bad entries are left out)."""
    days = {int(d) for d in settings.GATEWAY_KEY_EXPIRY_NOTICE_DAYS if str(d).strip().isdigit() and int(d) > 0}
    return sorted(days, reverse=True)


def gateway_keys_expiry_notify(*, now: datetime | None = None) -> int:
    """Beat, daily: tell a key's creator and its team's owners (inbox and e-mail) that it expires soon, once per
    key and threshold (GATEWAY_KEY_EXPIRY_NOTICE_DAYS, e.g. 14, 3 and 1 days before): a key within several
    thresholds at once is told the nearest only. Keys revoked, expired or rotated (retiring) are left alone; a
    changed expiry date is a new notice. Returns how many messages were created."""
    now = now or timezone.now()
    thresholds = expiry_thresholds()
    if not thresholds:
        return 0
    due = (GatewayKey.objects.filter(revoked_at__isnull=True, overlap_ends_at__isnull=True, expires_at__gt=now,
                                     expires_at__lte=now + timedelta(days=thresholds[0]))
           .select_related("team", "created_by").order_by("expires_at"))
    owners: dict[int, list] = {}
    sent = 0
    for key in due:
        left = key.expires_at - now
        threshold = min(t for t in thresholds if left <= timedelta(days=t))
        if key.team_id not in owners:
            owners[key.team_id] = [m.user for m in Membership.objects.filter(team_id=key.team_id, role=Role.OWNER)
                                   .select_related("user")]
        days = max(1, round(left / timedelta(days=1)))
        created = notify(
            users=[key.created_by, *owners[key.team_id]], kind="gateway.key_expiry",
            title=f"Gateway key '{key.name}' ({key.prefix}) expires in {days} day{'s' if days != 1 else ''}",
            body=(f"The key of {key.team.name} for '{key.feature}' stops working on {key.expires_at:%Y-%m-%d %H:%M} "
                  "UTC. Rotate it (the new key keeps its settings) or change its expiry before then."),
            link=reverse("gateway:key_detail", args=[key.pk]),
            dedupe_key=f"gateway.key_expiry:{key.pk}:{threshold}d:{key.expires_at:%Y%m%d%H%M}")
        sent += len(created)
    return sent
