"""Reads for accounts, already restricted to what the actor may see."""

from django.db.models import Count, QuerySet

from apps.accounts.models import ApiToken, Membership, Team
from apps.accounts.permissions import Action, teams_for


def team_list(*, actor) -> QuerySet[Team]:
    return teams_for(actor, Action.VIEW).annotate(member_count=Count("memberships")).order_by("name")


def team_members(*, team: Team) -> QuerySet[Membership]:
    return Membership.objects.filter(team=team).select_related("user").order_by("role", "user__username")


def api_token_list(*, team: Team, user=None) -> QuerySet[ApiToken]:
    tokens = ApiToken.objects.filter(team=team).select_related("user")
    return tokens.filter(user=user) if user is not None else tokens
