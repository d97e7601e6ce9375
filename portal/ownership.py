"""What a team owns, for its team page. Each area adds a counter when it arrives."""

from django.db.models import Sum

from apps.accounts.models import Team
from apps.costs.models import UsageRollup


def owned_by_team(team: Team) -> list[dict]:
    return [
        {"label": "API tokens", "count": team.api_tokens.filter(revoked_at__isnull=True).count()},
        {"label": "Usage events (all time)",  # from the daily rollups: no count over the raw ledger
         "count": UsageRollup.objects.filter(granularity="dayx", team=team).aggregate(n=Sum("requests"))["n"] or 0},
        {"label": "Budgets", "count": team.budgets.count()},
    ]
