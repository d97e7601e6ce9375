"""What llm registers at start-up (`LlmConfig.ready()` calls `register()`), in one place: links from audit
events to providers and models on the catalog page."""

from django.urls import reverse

from apps.audit.links import int_ids, register_object_link
from apps.llm.models import Model, Provider


def _provider_urls(ids: list[str]) -> dict[str, str]:
    catalog = reverse("llm:catalog")
    return {str(pk): f"{catalog}#provider-{pk}" for pk in Provider.objects.filter(pk__in=int_ids(ids))
            .values_list("pk", flat=True)}


def _model_urls(ids: list[str]) -> dict[str, str]:
    catalog = reverse("llm:catalog")
    return {str(pk): f"{catalog}#model-{pk}" for pk in Model.objects.filter(pk__in=int_ids(ids))
            .values_list("pk", flat=True)}


def register() -> None:
    register_object_link("llm.provider", _provider_urls)
    register_object_link("llm.model", _model_urls)
