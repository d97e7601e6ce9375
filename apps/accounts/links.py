"""Links from audit events to accounts objects (registered with the audit log at start-up)."""

from django.urls import reverse

from apps.audit.links import int_ids, register_object_link


def _team_urls(ids: list[str]) -> dict[str, str]:
    from apps.accounts.models import Team

    rows = Team.objects.filter(pk__in=int_ids(ids)).values_list("pk", "slug")
    return {str(pk): reverse("accounts:team_detail", kwargs={"slug": slug}) for pk, slug in rows}


def _token_urls(ids: list[str]) -> dict[str, str]:
    from apps.accounts.models import ApiToken

    rows = ApiToken.objects.filter(pk__in=int_ids(ids)).values_list("pk", "team__slug")
    return {str(pk): reverse("accounts:team_detail", kwargs={"slug": slug}) + "#tokens" for pk, slug in rows}


def register_links() -> None:
    register_object_link("accounts.team", _team_urls)
    register_object_link("accounts.apitoken", _token_urls)
