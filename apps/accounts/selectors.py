"""Reads for accounts, already restricted to what the actor may see."""

from django.db.models import Case, Count, F, IntegerField, QuerySet, Value, When
from django.http import Http404

from apps.accounts.models import ApiToken, Membership, Role, Team
from apps.accounts.permissions import Action, can, require, teams_for

_ROLE_RANK = Case(*(When(role=role, then=Value(rank)) for rank, role in enumerate(Role.values)),
                  output_field=IntegerField())


def team_for_api(*, actor, slug: str, action: Action) -> Team:
    """The team an API call names by slug, for `action`: a team the actor may not see is a 404 (its existence
    is not revealed); one it may see but not act on is a PermissionDenied (403) with the reason."""
    team = Team.objects.filter(slug=slug).first()
    if team is None or not can(actor, Action.VIEW, team):
        raise Http404(f"There is no team {slug!r} you can see.")
    require(actor, action, team)
    return team


def team_list(*, actor) -> QuerySet[Team]:
    return teams_for(actor, Action.VIEW).annotate(member_count=Count("memberships")).order_by("name")


def team_members(*, team: Team) -> QuerySet[Membership]:
    """Owners first, then engineers, then viewers; by username within a role."""
    return (Membership.objects.filter(team=team).select_related("user")
            .annotate(role_rank=_ROLE_RANK).order_by("role_rank", "user__username"))


def api_token_list(*, team: Team, user=None) -> QuerySet[ApiToken]:
    """A team's tokens (only `user`'s when given), active ones first, newest first."""
    tokens = ApiToken.objects.filter(team=team).select_related("user")
    if user is not None:
        tokens = tokens.filter(user=user)
    return tokens.order_by(F("revoked_at").asc(nulls_first=True), "-created_at")
