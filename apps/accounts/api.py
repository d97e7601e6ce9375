from ninja import Router, Schema

from apps.accounts.models import ApiToken
from apps.accounts.permissions import council_seats, team_roles
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


@router.get("/me", response=MeOut, summary="Who am I (the session user or the token's user)")
def me(request):
    token = request.auth if isinstance(request.auth, ApiToken) else None
    user = request.user
    roles = team_roles(user)
    teams = [TeamOut(slug=t.slug, name=t.name, role=roles.get(t.pk)) for t in team_list(actor=request.auth)]
    return MeOut(
        username=user.username, is_admin=bool(user.is_staff and token is None),
        council_seats=sorted(council_seats(user)), teams=teams,
        token_scope=token.scope if token else None, token_team=token.team.slug if token else None,
    )
