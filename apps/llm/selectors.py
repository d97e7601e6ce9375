"""Reads of the provider and model catalog, for views and the API."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from apps.costs.models import Price
from apps.costs.pricing import price_for, prices_valid_at
from apps.costs.selectors import spend_summary
from apps.llm.models import Deployment, Model, ModelAlias, ModelKind, Provider


def model_list(*, kind: str | None = None, include_inactive: bool = False) -> QuerySet[Model]:
    models = Model.objects.select_related("provider")
    if not include_inactive:
        models = models.filter(is_active=True, provider__is_active=True)
    if kind:
        models = models.filter(kind=kind)
    return models.order_by("provider__name", "name")


def chat_model_names() -> list[str]:
    """Names of the usable chat models (active, of an active provider), in catalog order."""
    return list(model_list(kind=ModelKind.CHAT).values_list("name", flat=True))


def chat_model_choices() -> QuerySet[Model]:
    """Active chat models by name, for a form's model field."""
    return Model.objects.filter(kind=ModelKind.CHAT, is_active=True).order_by("name")


def embedding_model_choices() -> QuerySet[Model]:
    """Active embedding models by name, for a form's model field."""
    return Model.objects.filter(kind=ModelKind.EMBEDDING, is_active=True).order_by("name")


def provider_list() -> QuerySet[Provider]:
    return Provider.objects.prefetch_related(Prefetch("models", queryset=Model.objects.order_by("name"))) \
        .order_by("name")


@dataclass(frozen=True)
class CatalogModel:
    model: Model
    price: Price | None  # the price valid now; None: unpriced

    @property
    def unpriced(self) -> bool:
        return self.price is None


@dataclass(frozen=True)
class CatalogProvider:
    provider: Provider
    models: list[CatalogModel]


def catalog(*, at=None) -> list[CatalogProvider]:
    """Every provider with its models and each model's current price. Three queries, whatever the size."""
    at = at or timezone.now()
    providers = list(provider_list())
    names = {m.priced_as for p in providers for m in p.models.all()}
    prices = prices_valid_at(names, at)
    return [
        CatalogProvider(provider=p, models=[CatalogModel(m, price_for(prices, m.priced_as, p.name))
                                            for m in p.models.all()])
        for p in providers
    ]


def price_history(*, model_name: str) -> QuerySet[Price]:
    """Every price row of a model name (all providers), newest first."""
    return Price.objects.filter(model_name=model_name).order_by("-valid_from", "provider")


def model_prices(*, model: Model) -> QuerySet[Price]:
    """The price history of a catalog model, by the name it is priced as."""
    return price_history(model_name=model.priced_as)


def model_get(*, pk: int) -> Model | None:
    return Model.objects.select_related("provider").filter(pk=pk).first()


@dataclass(frozen=True)
class UsageModel:
    name: str
    events: int
    cost: float
    unpriced: int
    configured: bool  # a model of the portal's catalog (called through the portal), else ingested usage only

    @property
    def priced(self) -> bool:
        return self.unpriced == 0


def models_in_usage(*, actor, days: int = 30) -> list[UsageModel]:
    """Every model name in the usage ledger over the costs' 30-day window (the same figures as Costs and Prices),
    marked as configured here or only seen in ingested usage (apps calling providers directly)."""
    configured = {name for row in Model.objects.values_list("name", "remote_name", "price_name") for name in row
                  if name}
    return [UsageModel(m["model"], m["events"], m["cost"], m["unpriced"], m["model"] in configured)
            for m in spend_summary(actor=actor, days=days).models if m["model"]]



def alias_list(*, kind: str | None = None) -> QuerySet[ModelAlias]:
    """Model aliases with their deployments (and each deployment's model and provider) in tier order."""
    aliases = ModelAlias.objects.prefetch_related(Prefetch(
        "deployments", queryset=Deployment.objects.select_related("model__provider").order_by("priority", "id")))
    if kind:
        aliases = aliases.filter(kind=kind)
    return aliases.order_by("name")


def deployment_labels() -> dict[int, str]:
    """{deployment id: "alias/model"} of the active deployments of active aliases (the metrics' label)."""
    rows = Deployment.objects.filter(is_active=True, alias__is_active=True).values_list("pk", "alias__name",
                                                                                       "model__name")
    return {pk: f"{alias}/{model}" for pk, alias, model in rows.order_by("alias__name", "priority", "pk")}


def alias_names(*, kind: str | None = None) -> list[str]:
    """Names of the active aliases (of `kind`), for model pickers next to catalog model names."""
    aliases = ModelAlias.objects.filter(is_active=True)
    if kind:
        aliases = aliases.filter(kind=kind)
    return list(aliases.order_by("name").values_list("name", flat=True))
