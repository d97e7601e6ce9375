"""The offline provider: MiniLM embeddings and the extractive chat model, in process, no network."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator

from apps.llm.errors import BadRequest
from apps.llm.models import Model, Provider
from apps.llm.offline import extractive
from apps.llm.results import ChatRequest, ProviderChat, ProviderEmbedding, StreamDelta, Usage
from apps.llm.tokens import estimate_messages_tokens, estimate_tokens

CHAT_MODEL = "local-extractive"
EMBEDDING_MODEL = "local-minilm"
_WORDS = re.compile(r"\s*\S+")


class LocalAdapter:
    """In process: `timeout` (an alias's deadline) is not applied; the offline models answer in milliseconds."""

    def __init__(self, provider: Provider):
        self.provider = provider

    def chat(self, model: Model, request: ChatRequest, timeout: float | None = None) -> ProviderChat:
        # It cannot call tools: it answers in text, and callers see no tool_calls.
        answer = extractive.answer(request.messages, max_tokens=request.max_tokens,
                                   response_format=request.response_format)
        usage = Usage(input_tokens=estimate_messages_tokens(request.messages, request.tools),
                      output_tokens=estimate_tokens(answer.text), estimated=True)
        return ProviderChat(text=answer.text, usage=usage, finish_reason=answer.finish_reason,
                            remote_model=model.remote_name)

    def chat_stream(self, model: Model, request: ChatRequest, timeout: float | None = None) -> Iterator[StreamDelta]:
        result = self.chat(model, request)

        def words() -> Iterator[StreamDelta]:
            for word in _WORDS.findall(result.text):  # word by word; the pieces join to the full text
                yield StreamDelta(text=word)
            yield StreamDelta(final=result)

        return words()

    def embed(self, model: Model, texts: list[str], timeout: float | None = None) -> ProviderEmbedding:
        from apps.llm.offline import embeddings

        if model.remote_name != EMBEDDING_MODEL:
            raise BadRequest(f"The offline provider has no embedding model '{model.remote_name}'; "
                             f"use '{EMBEDDING_MODEL}'.")
        result = embeddings.embed(texts)  # the vectors and the exact word pieces, from one tokenisation
        return ProviderEmbedding(vectors=result.vectors, usage=Usage(input_tokens=result.tokens),
                                 remote_model=model.remote_name)

    def embed_ahead(self, model: Model, text: str) -> None:
        """Start embedding `text` on the offline model's thread (calls.embed_ahead); `embed` then waits for it."""
        from apps.llm.offline import embeddings

        if model.remote_name == EMBEDDING_MODEL:
            embeddings.embed_ahead(text)

    # The async path runs the same in-process work in a thread: fine for the offline models, which are for
    # demos and tests, not for traffic.
    async def achat(self, model: Model, request: ChatRequest, timeout: float | None = None) -> ProviderChat:
        return await asyncio.to_thread(self.chat, model, request)

    async def achat_stream(self, model: Model, request: ChatRequest,
                           timeout: float | None = None) -> AsyncIterator[StreamDelta]:
        pieces = list(await asyncio.to_thread(self.chat_stream, model, request))

        async def replay() -> AsyncIterator[StreamDelta]:
            for piece in pieces:
                yield piece

        return replay()

    async def aembed(self, model: Model, texts: list[str], timeout: float | None = None) -> ProviderEmbedding:
        return await asyncio.to_thread(self.embed, model, texts)

    def test_connection(self) -> str:
        from apps.llm.offline import embeddings

        dims = len(embeddings.embed_texts(["ping"])[0])
        return f"Offline models ready: MiniLM loaded ({dims}-d embeddings); the extractive chat model needs nothing."
