from decimal import Decimal

from django.core.exceptions import PermissionDenied
from django.utils import timezone
from ninja import Router, Schema

from apps.accounts.permissions import is_admin
from apps.core.api_errors import errors
from apps.costs.pricing import price_for, prices_valid_at
from apps.llm.selectors import model_list, provider_list

router = Router(tags=["models"])


class PriceOut(Schema):
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None
    reasoning_per_mtok: Decimal | None
    valid_from: str


class ModelOut(Schema):
    name: str
    display_name: str
    provider: str
    provider_kind: str
    kind: str
    context_window: int
    max_output_tokens: int
    embedding_dimensions: int | None = None
    price: PriceOut | None = None  # the price valid now (USD per 1M tokens); null: unpriced


@router.get("/models", response=list[ModelOut], summary="The model catalog: every active model the portal may call")
def models(request, kind: str = ""):
    rows = list(model_list(kind=kind or None))
    prices = prices_valid_at({m.priced_as for m in rows}, timezone.now())
    out = []
    for m in rows:
        price = price_for(prices, m.priced_as, m.provider.name)
        out.append(ModelOut(
            name=m.name, display_name=str(m), provider=m.provider.name, provider_kind=m.provider.kind, kind=m.kind,
            context_window=m.context_window, max_output_tokens=m.max_output_tokens,
            embedding_dimensions=m.embedding_dimensions,
            price=PriceOut(input_per_mtok=price.input_per_mtok, output_per_mtok=price.output_per_mtok,
                           cached_input_per_mtok=price.cached_input_per_mtok,
                           reasoning_per_mtok=price.reasoning_per_mtok,
                           valid_from=price.valid_from.isoformat()) if price else None,
        ))
    return out


class ProviderOut(Schema):
    name: str
    kind: str
    base_url: str
    api_version: str
    key_source: str  # "stored" (encrypted), "env", or "none" — never the key
    api_key_env: str
    timeout_seconds: float
    max_retries: int
    is_active: bool
    models: list[str]


@router.get("/providers", response={200: list[ProviderOut], **errors(403)}, summary="Providers and where their keys come from (admins)")
def providers(request):
    if not is_admin(request.auth):
        raise PermissionDenied("Only portal admins may list providers.")
    return [
        ProviderOut(name=p.name, kind=p.kind, base_url=p.base_url, api_version=p.api_version,
                    key_source="env" if p.api_key_env else ("stored" if p.api_key_encrypted else "none"),
                    api_key_env=p.api_key_env, timeout_seconds=p.timeout_seconds, max_retries=p.max_retries,
                    is_active=p.is_active, models=[m.name for m in p.models.all()])
        for p in provider_list()
    ]
