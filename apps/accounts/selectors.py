"""Reads for accounts, already restricted to what the actor may see."""

from django.db.models import Case, Count, F, IntegerField, QuerySet, Value, When

from apps.accounts.models import ApiToken, Membership, Role, Team
from apps.accounts.permissions import Action, teams_for

_ROLE_RANK = Case(*(When(role=role, then=Value(rank)) for rank, role in enumerate(Role.values)),
                  output_field=IntegerField())


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
