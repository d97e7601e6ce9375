"""What a team owns in costs, counted on the team page (registered in CostsConfig.ready())."""

from django.db.models import Sum

from apps.accounts.ownership import register_owned_counter


def _usage_events(team) -> int:
    # from the daily rollups: no count over the raw ledger
    from apps.costs.models import UsageRollup

    return UsageRollup.objects.filter(granularity="dayx", team=team).aggregate(n=Sum("requests"))["n"] or 0


def register_costs_counters() -> None:
    register_owned_counter("Usage events (all time)", _usage_events)
    register_owned_counter("Budgets", lambda team: team.budgets.count())
