"""What a team owns, for its team page. Each area adds a counter when it arrives."""

from apps.accounts.models import Team
from apps.costs.models import UsageEvent


def owned_by_team(team: Team) -> list[dict]:
    return [
        {"label": "API tokens", "count": team.api_tokens.filter(revoked_at__isnull=True).count()},
        {"label": "Usage events (all time)", "count": UsageEvent.objects.filter(team=team).count()},
    ]
