"""Links from audit events to accounts objects (registered with the audit log by apps/accounts/hooks.py)."""

from django.urls import reverse

from apps.accounts.models import ApiToken, Team
from apps.audit.links import int_ids


def team_urls(ids: list[str]) -> dict[str, str]:
    rows = Team.objects.filter(pk__in=int_ids(ids)).values_list("pk", "slug")
    return {str(pk): reverse("accounts:team_detail", kwargs={"slug": slug}) for pk, slug in rows}


def token_urls(ids: list[str]) -> dict[str, str]:
    rows = ApiToken.objects.filter(pk__in=int_ids(ids)).values_list("pk", "team__slug")
    return {str(pk): reverse("accounts:team_detail", kwargs={"slug": slug}) + "#tokens" for pk, slug in rows}
