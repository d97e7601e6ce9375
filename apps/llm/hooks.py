"""What llm registers at start-up (`LlmConfig.ready()` calls `register()`), in one place: links from audit
events to providers and models on the catalog page, the signals that keep cached routes true, and the live
deployment health on /metrics."""

from django.db.models.signals import post_delete, post_save
from django.urls import reverse

from apps.audit.links import int_ids, register_object_link
from apps.core.metrics import register_shared_collector
from apps.costs.models import Price
from apps.llm.health import HealthCollector
from apps.llm.models import Deployment, Model, ModelAlias, Provider
from apps.llm.routing import routes_changed

ROUTED_MODELS = (Provider, Model, Price, ModelAlias, Deployment)


def _provider_urls(ids: list[str]) -> dict[str, str]:
    catalog = reverse("llm:catalog")
    return {str(pk): f"{catalog}#provider-{pk}" for pk in Provider.objects.filter(pk__in=int_ids(ids))
            .values_list("pk", flat=True)}


def _model_urls(ids: list[str]) -> dict[str, str]:
    catalog = reverse("llm:catalog")
    return {str(pk): f"{catalog}#model-{pk}" for pk in Model.objects.filter(pk__in=int_ids(ids))
            .values_list("pk", flat=True)}


def _routes_changed(sender, **kwargs) -> None:
    routes_changed()


def register() -> None:
    register_object_link("llm.provider", _provider_urls)
    register_object_link("llm.model", _model_urls)
    register_shared_collector(HealthCollector())  # live health per deployment on the web's /metrics
    for sender in ROUTED_MODELS:
        post_save.connect(_routes_changed, sender=sender, dispatch_uid=f"llm-routes-{sender._meta.label}-save")
        post_delete.connect(_routes_changed, sender=sender, dispatch_uid=f"llm-routes-{sender._meta.label}-delete")
