from ninja import Router, Schema

from apps.llm.selectors import model_list

router = Router(tags=["models"])


class ModelOut(Schema):
    name: str
    display_name: str
    provider: str
    provider_kind: str
    kind: str
    context_window: int
    max_output_tokens: int


@router.get("/models", response=list[ModelOut], summary="The model catalog: every active model the portal may call")
def models(request, kind: str = ""):
    return [
        ModelOut(name=m.name, display_name=str(m), provider=m.provider.name, provider_kind=m.provider.kind,
                 kind=m.kind, context_window=m.context_window, max_output_tokens=m.max_output_tokens)
        for m in model_list(kind=kind or None)
    ]
