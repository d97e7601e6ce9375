"""Who may do what to an incident, and which status moves exist (the state machine's table).

- declare: engineers and owners of the owning team (Action.CHANGE), council members, admins;
- update, add notes, acknowledge, apply and undo mitigations, reopen: the same people for any of the
  incident's teams (owning or affected);
- resolve and mark the review done: the commander, council members, admins;
- read: anyone who may view one of the incident's teams (viewers included), council members, admins.
A token acts within its one team and scope, and is never a council member (apps/accounts/permissions.py).
"""

from __future__ import annotations

from apps.accounts.models import ApiToken
from apps.accounts.permissions import (
    SCOPE_ACTIONS,
    Action,
    is_admin,
    is_authenticated,
    is_council,
    sees_everything,
    team_actions,
    user_id_of,
)
from apps.incidents.models import Incident, Status

# status -> the statuses it may move to. Leaving resolved / review done for investigating is a reopen.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    Status.OPEN: (Status.INVESTIGATING, Status.MITIGATED, Status.RESOLVED),
    Status.INVESTIGATING: (Status.MITIGATED, Status.RESOLVED),
    Status.MITIGATED: (Status.INVESTIGATING, Status.RESOLVED),
    Status.RESOLVED: (Status.REVIEW_DONE, Status.INVESTIGATING),
    Status.REVIEW_DONE: (Status.INVESTIGATING,),
}
CLOSING = (Status.RESOLVED, Status.REVIEW_DONE)  # the commander's (or council's) call


def is_reopen(current: str, to: str) -> bool:
    return current in CLOSING and to == Status.INVESTIGATING


def team_ids_of(incident: Incident) -> set[int]:
    cached = getattr(incident, "_team_ids", None)
    if cached is None:
        cached = {incident.team_id, *incident.teams.values_list("pk", flat=True)}
        incident._team_ids = cached
    return cached


def is_council_member(actor) -> bool:
    return not isinstance(actor, ApiToken) and is_authenticated(actor) and is_council(actor)


def may_declare(actor, team) -> bool:
    return is_admin(actor) or is_council_member(actor) or Action.CHANGE in team_actions(actor, team.pk)


def may_view(actor, incident: Incident) -> bool:
    return sees_everything(actor) or any(Action.VIEW in team_actions(actor, t) for t in team_ids_of(incident))


def may_update(actor, incident: Incident) -> bool:
    return is_admin(actor) or is_council_member(actor) or any(Action.CHANGE in team_actions(actor, t)
                                                     for t in team_ids_of(incident))


def writes_as_its_user(actor) -> bool:
    """May `actor` act as the person it is (the commander, an action item's owner)? A token only with a write
    scope: a read token never writes."""
    return not isinstance(actor, ApiToken) or Action.CHANGE in SCOPE_ACTIONS.get(actor.scope, frozenset())


def may_close(actor, incident: Incident) -> bool:
    """Resolve or mark the review done: the commander (a token only with a write scope), council, admins."""
    if is_admin(actor) or is_council_member(actor):
        return True
    if not writes_as_its_user(actor):
        return False
    return is_authenticated(actor) and incident.commander_id is not None and \
        user_id_of(actor) == incident.commander_id


def may_move(actor, incident: Incident, to: str) -> bool:
    return may_close(actor, incident) if to in CLOSING else may_update(actor, incident)


def allowed_moves(actor, incident: Incident) -> list[str]:
    return [to for to in TRANSITIONS.get(incident.status, ()) if may_move(actor, incident, to)]


def may_switch(actor, incident: Incident) -> bool:
    """Apply or undo a mitigation: whoever may update the incident (engineers and owners of its teams, council
    members, admins), and its commander and named responders who may read it (a viewer named responder); never
    a viewer who is not named (a product manager), nor a read token."""
    if may_update(actor, incident):
        return True
    if isinstance(actor, ApiToken) or not is_authenticated(actor) or not may_view(actor, incident):
        return False
    user_id = user_id_of(actor)
    return user_id == incident.commander_id or incident.responders.filter(pk=user_id).exists()
