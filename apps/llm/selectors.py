from django.db.models import QuerySet

from apps.llm.models import Model, Provider


def model_list(*, kind: str | None = None, include_inactive: bool = False) -> QuerySet[Model]:
    models = Model.objects.select_related("provider")
    if not include_inactive:
        models = models.filter(is_active=True, provider__is_active=True)
    if kind:
        models = models.filter(kind=kind)
    return models.order_by("provider__name", "name")


def provider_list() -> QuerySet[Provider]:
    return Provider.objects.prefetch_related("models").order_by("name")
