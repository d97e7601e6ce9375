"""The stand-in upstream (apps/llm/standin.py) in tests: catalog rows pointing at it.

The server itself is the `llm_standin` fixture (tests/conftest.py): one uvicorn thread per test session, its
script and counters reset before each test.
"""

from __future__ import annotations

from apps.llm.models import ModelKind, ProviderKind
from apps.llm.services import model_create, provider_create
from apps.llm.standin import RunningStandIn


def standin_provider(server: RunningStandIn, *, name: str = "standin", max_retries: int = 0,
                     timeout_seconds: float = 5.0):
    """An openai_compatible Provider at the stand-in's URL (no key: it is sent `Bearer EMPTY`)."""
    return provider_create(name=name, kind=ProviderKind.OPENAI_COMPATIBLE, base_url=server.base_url,
                           max_retries=max_retries, timeout_seconds=timeout_seconds)


def standin_model(provider, name: str, remote_name: str = "standin-chat", *, kind: str = ModelKind.CHAT,
                  context_window: int = 8192, max_output_tokens: int = 1024, embedding_dimensions: int | None = None):
    """A catalog Model served by the stand-in; `remote_name` scripts its behaviour (fail-500, ctx-64, embed-8…)."""
    if kind == ModelKind.EMBEDDING and embedding_dimensions is None:
        embedding_dimensions = 8
    return model_create(provider=provider, name=name, remote_name=remote_name, kind=kind,
                        context_window=context_window, max_output_tokens=max_output_tokens,
                        embedding_dimensions=embedding_dimensions)
