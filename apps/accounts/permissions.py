"""The one permission helper. Every view and API endpoint asks here; lists are filtered in SQL.

Actors are a User (browser session) or an ApiToken (machines). Rules:
- staff (admins) may do everything;
- a team role grants actions on what the team owns: viewer -> view; engineer -> view, change, ingest;
  owner -> view, change, manage, ingest;
- council members (any seat) may view everything: they review the evidence;
- django-guardian object permissions (`view_<model>`, `change_<model>`) share single team-owned objects
  beyond the team (never a Team itself: access to a team is membership);
- a token acts for its user within its one team, capped by its scope (read / write / ingest), and never
  beyond what its user may do now (a user who leaves the team takes their tokens' rights with them).
  A token is never an admin, a council member or the holder of a guardian grant.

`can()` answers for one object (roles are read once per user object, i.e. once per request);
`restrict()` and `teams_for()` return lazy querysets whose whole rule is one SQL statement.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from django.contrib.auth.models import AnonymousUser, Group
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, Model, Q, QuerySet
from django.db.models.functions import Cast
from django.http import Http404
from guardian.models import GroupObjectPermission, UserObjectPermission

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
COUNCIL_GROUP_NAMES = tuple(seat.group_name for seat in CouncilSeat)

Actor = Any  # User | AnonymousUser | ApiToken


def user_of(actor: Actor):
    """The person behind an actor: a token's owner, a signed-in user, or None (anonymous, the system)."""
    if isinstance(actor, ApiToken):
        return actor.user
    return actor if getattr(actor, "is_authenticated", False) else None


def user_id_of(actor: Actor) -> int | None:
    """The id of the person behind an actor, without a query: a token's owner id, a signed-in user's id, or None
    (anonymous, the system)."""
    user_id = getattr(actor, "user_id", None)  # an ApiToken
    if user_id is not None:
        return user_id
    return actor.pk if getattr(actor, "is_authenticated", False) else None


def roles_allowing(action: Action | str) -> list[str]:
    action = Action(action)
    return [role for role, actions in ROLE_ACTIONS.items() if action in actions]


def scope_allowed_for_role(scope: str, role: str | None) -> bool:
    """A token's scope may not promise more than its owner's role grants (a viewer gets read tokens only)."""
    return SCOPE_ACTIONS.get(scope, frozenset()) <= ROLE_ACTIONS.get(role, frozenset())


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
        names = user.groups.filter(name__in=COUNCIL_GROUP_NAMES).values_list("name", flat=True)
        cached = {name.removeprefix("council-") for name in names}
        user._portal_council_seats = cached
    return cached


def forget_cached_roles(user) -> None:
    """Drop the per-object caches after a membership or seat change made through this user object."""
    for attr in ("_portal_team_roles", "_portal_council_seats"):
        user.__dict__.pop(attr, None)


def is_council(user) -> bool:
    return bool(council_seats(user))


def is_admin(actor: Actor) -> bool:
    """Staff acting in the browser. A token is never an admin, whoever created it."""
    return not isinstance(actor, ApiToken) and is_authenticated(actor) and actor.is_staff


def sees_everything(actor: Actor) -> bool:
    """Admins and council members read every team's records (and the whole audit log)."""
    return not isinstance(actor, ApiToken) and is_authenticated(actor) and (actor.is_staff or is_council(actor))


def team_actions(actor: Actor, team_id: int | None) -> frozenset[Action]:
    """What an actor may do to things owned by one team (ignoring object-level grants)."""
    if not is_authenticated(actor):
        return frozenset()
    user = user_of(actor)
    if isinstance(actor, ApiToken):
        if team_id is None or team_id != actor.team_id:
            return frozenset()
        # authenticate_token annotates the owner's current role; fall back to a lookup for tokens built elsewhere.
        role = getattr(actor, "member_role", None) or team_roles(user).get(team_id)
        return ROLE_ACTIONS.get(role, frozenset()) & SCOPE_ACTIONS.get(actor.scope, frozenset())
    if user.is_staff:
        return frozenset(Action)
    granted = set(ROLE_ACTIONS.get(team_roles(user).get(team_id), frozenset())) if team_id is not None else set()
    if is_council(user):
        granted.add(Action.VIEW)
    return frozenset(granted)


def _team_id_of(obj) -> int | None:
    if isinstance(obj, Team):
        return obj.pk
    return getattr(obj, "team_id", None)


def can(actor: Actor, action: Action | str, obj: Model | None = None) -> bool:
    """May `actor` do `action` to `obj` (a Team, or anything with a `team_id`)? Without obj: admins only."""
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
        return actor.has_perm(f"{meta.app_label}.{codename}_{meta.model_name}", obj)
    return False


def require(actor: Actor, action: Action | str, obj: Model | None = None) -> None:
    if not can(actor, action, obj):
        raise PermissionDenied(f"You may not {Action(action).value} this {_noun(obj)}.")


def _noun(obj) -> str:
    return obj._meta.verbose_name if obj is not None else "area"


def _council_exists(user) -> Exists:
    """True in SQL when the user holds any council seat (evaluated once per statement, as an InitPlan)."""
    return Exists(Group.objects.filter(user=user.pk, name__in=COUNCIL_GROUP_NAMES))


def _team_condition(actor: Actor, action: Action, lookup: str) -> Q | None:
    """The SQL condition 'the row's team lets actor do action', or None for 'everything'.

    `lookup` is the path from the queried model to the team's id ("pk" for Team itself).
    """
    roles = roles_allowing(action)
    if isinstance(actor, ApiToken):
        if action not in SCOPE_ACTIONS.get(actor.scope, frozenset()):
            return Q(pk__in=[])
        # The token's user must still hold a role granting the action in the token's team, checked now.
        still_member = Membership.objects.filter(team_id=actor.team_id, user_id=actor.user_id, role__in=roles)
        return Q(Exists(still_member)) & Q(**{lookup: actor.team_id})
    user = actor
    if user.is_staff:
        return None
    condition = Q(**{f"{lookup}__in": Membership.objects.filter(user_id=user.pk, role__in=roles).values("team_id")})
    if action == Action.VIEW:
        condition |= Q(_council_exists(user))
    return condition


def teams_for(actor: Actor, action: Action | str) -> QuerySet[Team]:
    """The teams on whose things an actor may do `action` (pickers, team lists, tenant filters). Lazy SQL."""
    action = Action(action)
    if not is_authenticated(actor):
        return Team.objects.none()
    condition = _team_condition(actor, action, "pk")
    return Team.objects.all() if condition is None else Team.objects.filter(condition)


def teams_or_deny(actor: Actor, action: Action | str, message: str) -> QuerySet[Team]:
    """The teams of `teams_for` in name order, for a create form's team picker; PermissionDenied(message) when
    the actor has none (the pages that create team-owned things)."""
    teams = teams_for(actor, action).order_by("name")
    if not teams.exists():
        raise PermissionDenied(message)
    return teams


def restrict(queryset: QuerySet, actor: Actor, action: Action | str = Action.VIEW,
             team_field: str = "team") -> QuerySet:
    """Filter a queryset of team-owned rows to those an actor may `action`, in SQL.

    No query runs here: the result is the caller's queryset with one WHERE clause made of subqueries
    (memberships, council seat, guardian grants), so a list costs one statement whatever its size.
    `team_field` is the path to the owning team (e.g. "collection__team"); a Team queryset filters itself.
    """
    action = Action(action)
    if not is_authenticated(actor):
        return queryset.none()
    lookup = "pk" if queryset.model is Team else team_field
    condition = _team_condition(actor, action, lookup)
    if condition is None:
        return queryset
    codename = _GUARDIAN_CODENAMES.get(action)
    if codename and queryset.model is not Team and not isinstance(actor, ApiToken):
        for shared_ids in _guardian_object_ids(actor, queryset.model, codename):
            condition |= Q(pk__in=shared_ids)
    return queryset.filter(condition)


def restrict_key(actor: Actor) -> tuple | None:
    """Every fact of `actor` that restrict() reads in Python; all else it compiles to subqueries the database
    evaluates in each statement (memberships, council seats, guardian grants). So the SQL restrict() compiles
    for one key serves every later actor with the same key, in any request: a changed membership still acts
    on the next statement. None: not worth keeping (anonymous)."""
    if isinstance(actor, ApiToken):
        return ("token", actor.pk, actor.team_id, actor.user_id, actor.scope, is_authenticated(actor))
    if actor is None or isinstance(actor, AnonymousUser):
        return None
    return ("user", actor.pk, bool(actor.is_staff), is_authenticated(actor))


def _guardian_object_ids(user, model, codename: str) -> list[QuerySet]:
    """Subqueries of object ids shared with the user, directly or through a group, by django-guardian."""
    meta = model._meta
    perm = dict(content_type__app_label=meta.app_label, content_type__model=meta.model_name,
                permission__codename=f"{codename}_{meta.model_name}")
    direct = UserObjectPermission.objects.filter(user_id=user.pk, **perm)
    via_group = GroupObjectPermission.objects.filter(group__user=user.pk, **perm)
    # guardian stores object_pk as text; cast it to the model's key type so the pk index is usable.
    pk_field = meta.pk
    while pk_field.is_relation:
        pk_field = pk_field.target_field
    return [qs.annotate(object_id=Cast("object_pk", pk_field.__class__())).values("object_id")
            for qs in (direct, via_group)]


def get_object_for(actor: Actor, queryset: QuerySet, action: Action | str = Action.VIEW, **lookup):
    """Fetch one object the actor may see, then check the action: 404 if unseen, 403 if seen but refused."""
    obj = restrict(queryset, actor, Action.VIEW).filter(**lookup).first()
    if obj is None:
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.")
    require(actor, action, obj)
    return obj

