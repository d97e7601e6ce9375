"""The one permission helper. Every view and API endpoint asks here; lists are filtered in SQL.

Actors are a User (browser session) or an ApiToken (machines). Rules:
- staff (admins) may do everything;
- a team role grants actions on what the team owns: viewer -> view; engineer -> view, change, ingest;
  owner -> view, change, manage, ingest;
- council members (any seat) may view everything: they review the evidence;
- django-guardian object permissions (`view_<model>`, `change_<model>`) share single objects beyond the team;
- a token acts for its user within its one team, capped by its scope (read / write / ingest), and never
  beyond what its user may do now (a user who leaves the team takes their tokens' rights with them).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import BigIntegerField, Model, Q, QuerySet
from django.db.models.functions import Cast
from django.http import Http404

from apps.accounts.models import ApiToken, CouncilSeat, Membership, Role, Team, TokenScope


class Action(StrEnum):
    VIEW = "view"
    CHANGE = "change"
    MANAGE = "manage"  # team settings, members, tokens, budgets, deletion
    INGEST = "ingest"  # machine-sent usage, traces and feedback


ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    Role.VIEWER: frozenset({Action.VIEW}),
    Role.ENGINEER: frozenset({Action.VIEW, Action.CHANGE, Action.INGEST}),
    Role.OWNER: frozenset({Action.VIEW, Action.CHANGE, Action.MANAGE, Action.INGEST}),
}
SCOPE_ACTIONS: dict[str, frozenset[Action]] = {
    TokenScope.READ: frozenset({Action.VIEW}),
    TokenScope.WRITE: frozenset({Action.VIEW, Action.CHANGE}),
    TokenScope.INGEST: frozenset({Action.INGEST}),
}
_GUARDIAN_CODENAMES = {Action.VIEW: "view", Action.CHANGE: "change"}

Actor = Any  # User | AnonymousUser | ApiToken


def _user_of(actor: Actor):
    return actor.user if isinstance(actor, ApiToken) else actor


def is_authenticated(actor: Actor) -> bool:
    if actor is None or isinstance(actor, AnonymousUser):
        return False
    if isinstance(actor, ApiToken):
        return actor.is_active and actor.user.is_active
    return bool(actor.is_authenticated and actor.is_active)


def team_roles(user) -> dict[int, str]:
    """{team_id: role} for a user, computed once per user object (i.e. once per request)."""
    if not getattr(user, "is_authenticated", False):
        return {}
    cached = getattr(user, "_portal_team_roles", None)
    if cached is None:
        cached = dict(Membership.objects.filter(user=user).values_list("team_id", "role"))
        user._portal_team_roles = cached
    return cached


def council_seats(user) -> set[str]:
    if not getattr(user, "is_authenticated", False):
        return set()
    cached = getattr(user, "_portal_council_seats", None)
    if cached is None:
        names = user.groups.filter(name__startswith="council-").values_list("name", flat=True)
        cached = {name.removeprefix("council-") for name in names} & set(CouncilSeat.values)
        user._portal_council_seats = cached
    return cached


def is_council(user) -> bool:
    return bool(council_seats(user))


def is_admin(actor: Actor) -> bool:
    """Staff acting in the browser. A token is never an admin, whoever created it."""
    return not isinstance(actor, ApiToken) and is_authenticated(actor) and actor.is_staff


def team_actions(actor: Actor, team_id: int | None) -> frozenset[Action]:
    """What an actor may do to things owned by one team (ignoring object-level grants)."""
    if not is_authenticated(actor):
        return frozenset()
    user = _user_of(actor)
    if isinstance(actor, ApiToken):
        if team_id != actor.team_id:
            return frozenset()
        role = team_roles(user).get(team_id)
        return ROLE_ACTIONS.get(role, frozenset()) & SCOPE_ACTIONS[actor.scope]
    if user.is_staff:
        return frozenset(Action)
    granted = set(ROLE_ACTIONS.get(team_roles(user).get(team_id), frozenset()))
    if is_council(user):
        granted.add(Action.VIEW)
    return frozenset(granted)


def _team_id_of(obj) -> int | None:
    if isinstance(obj, Team):
        return obj.pk
    return getattr(obj, "team_id", None)


def can(actor: Actor, action: Action | str, obj: Model | None = None) -> bool:
    """May `actor` do `action` to `obj` (a Team, or anything with a `team_id`)?"""
    action = Action(action)
    if not is_authenticated(actor):
        return False
    if obj is None:
        return is_admin(actor)
    if action in team_actions(actor, _team_id_of(obj)):
        return True
    codename = _GUARDIAN_CODENAMES.get(action)
    if codename and not isinstance(obj, Team) and not isinstance(actor, ApiToken):
        meta = obj._meta
        return _user_of(actor).has_perm(f"{meta.app_label}.{codename}_{meta.model_name}", obj)
    return False


def require(actor: Actor, action: Action | str, obj: Model | None = None) -> None:
    if not can(actor, action, obj):
        raise PermissionDenied(f"You may not {Action(action).value} this {_noun(obj)}.")


def _noun(obj) -> str:
    return obj._meta.verbose_name if obj is not None else "area"


def teams_for(actor: Actor, action: Action | str) -> QuerySet[Team]:
    """The teams on whose things an actor may do `action` (for pickers and for restrict())."""
    action = Action(action)
    if not is_authenticated(actor):
        return Team.objects.none()
    if isinstance(actor, ApiToken):
        allowed = action in team_actions(actor, actor.team_id)
        return Team.objects.filter(pk=actor.team_id) if allowed else Team.objects.none()
    user = actor
    if user.is_staff or (action == Action.VIEW and is_council(user)):
        return Team.objects.all()
    ids = [team_id for team_id, role in team_roles(user).items() if action in ROLE_ACTIONS.get(role, ())]
    return Team.objects.filter(pk__in=ids)


def restrict(queryset: QuerySet, actor: Actor, action: Action | str = Action.VIEW,
             team_field: str = "team") -> QuerySet:
    """Filter a queryset of team-owned rows to those an actor may `action`, in SQL (one subquery)."""
    action = Action(action)
    if not is_authenticated(actor):
        return queryset.none()
    if isinstance(actor, ApiToken):
        if action not in team_actions(actor, actor.team_id):
            return queryset.none()
        return queryset.filter(**{f"{team_field}_id": actor.team_id})
    user = actor
    if user.is_staff or (action == Action.VIEW and is_council(user)):
        return queryset
    team_ids = [tid for tid, role in team_roles(user).items() if action in ROLE_ACTIONS.get(role, ())]
    condition = Q(**{f"{team_field}_id__in": team_ids})
    codename = _GUARDIAN_CODENAMES.get(action)
    if codename and queryset.model is not Team:
        for shared_ids in _guardian_object_ids(user, queryset.model, codename):
            condition |= Q(pk__in=shared_ids)
    return queryset.filter(condition)


def _guardian_object_ids(user, model, codename: str) -> list[QuerySet]:
    """Subqueries of object ids shared with the user, directly or through a group, by django-guardian."""
    from django.contrib.contenttypes.models import ContentType
    from guardian.models import GroupObjectPermission, UserObjectPermission

    ct = ContentType.objects.get_for_model(model)
    perm = f"{codename}_{model._meta.model_name}"
    direct = UserObjectPermission.objects.filter(user=user, content_type=ct, permission__codename=perm)
    via_group = GroupObjectPermission.objects.filter(group__user=user, content_type=ct, permission__codename=perm)
    # guardian stores object_pk as text; compare with our bigint keys.
    return [
        qs.annotate(object_id=Cast("object_pk", BigIntegerField())).values("object_id")
        for qs in (direct, via_group)
    ]


def get_object_for(actor: Actor, queryset: QuerySet, action: Action | str = Action.VIEW, **lookup):
    """Fetch one object the actor may see, then check the action: 404 if unseen, 403 if seen but refused."""
    obj = restrict(queryset, actor, Action.VIEW).filter(**lookup).first()
    if obj is None:
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.")
    require(actor, action, obj)
    return obj
