"""Links from audit events to providers and models (registered with the audit log at start-up)."""

from django.urls import reverse

from apps.audit.links import int_ids, register_object_link


def _provider_urls(ids: list[str]) -> dict[str, str]:
    from apps.llm.models import Provider

    catalog = reverse("llm:catalog")
    return {str(pk): f"{catalog}#provider-{pk}" for pk in Provider.objects.filter(pk__in=int_ids(ids))
            .values_list("pk", flat=True)}


def _model_urls(ids: list[str]) -> dict[str, str]:
    from apps.llm.models import Model

    catalog = reverse("llm:catalog")
    return {str(pk): f"{catalog}#model-{pk}" for pk in Model.objects.filter(pk__in=int_ids(ids))
            .values_list("pk", flat=True)}


def register_links() -> None:
    register_object_link("llm.provider", _provider_urls)
    register_object_link("llm.model", _model_urls)
