from ninja import Router, Schema

from apps.accounts.models import ApiToken
from apps.accounts.permissions import council_seats, is_admin, team_roles
from apps.accounts.selectors import team_list

router = Router(tags=["accounts"])


class TeamOut(Schema):
    slug: str
    name: str
    role: str | None


class MeOut(Schema):
    username: str
    is_admin: bool
    council_seats: list[str]
    teams: list[TeamOut]
    token_scope: str | None = None
    token_team: str | None = None
    token_expires_at: str | None = None


@router.get("/me", response=MeOut, summary="Who am I: the session user, or a token's user, team and scope")
def me(request):
    """Any valid credential may ask. A token speaks for one team and is never admin or council."""
    caller = request.auth
    if isinstance(caller, ApiToken):
        user = caller.user
        role = caller.member_role  # read with the token (apps/accounts/auth.py)
        return MeOut(username=user.get_username(), is_admin=False, council_seats=[],
                     teams=[TeamOut(slug=caller.team.slug, name=caller.team.name, role=role)],
                     token_scope=caller.scope, token_team=caller.team.slug,
                     token_expires_at=caller.expires_at.isoformat() if caller.expires_at else None)
    roles = team_roles(caller)
    teams = [TeamOut(slug=t.slug, name=t.name, role=roles.get(t.pk)) for t in team_list(actor=caller)]
    return MeOut(username=caller.get_username(), is_admin=is_admin(caller),
                 council_seats=sorted(council_seats(caller)), teams=teams)
