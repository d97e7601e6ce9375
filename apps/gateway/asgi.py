"""The front door: a lean ASGI application for `/v1/` (ADR 0070: raw ASGI measured ahead of a Django view),
served by uvicorn on its C parser and uvloop (ADR 0134).

    POST /v1/chat/completions    plain, or `stream: true` as OpenAI's SSE chunks ending `data: [DONE]`
    POST /v1/embeddings
    GET  /v1/models              the aliases (and catalog models) this key may use

Per request: read the body (≤ GATEWAY_MAX_BODY_BYTES, else 413) → the key (`Authorization: Bearer pk-gw-…`,
cached in process, checked against the gateway stamp: one Redis GET, or for a key cached here one pipeline that
counts its request windows too, limits.stamp_and_count) → parse → alias allowed (403) → admission guards (423) →
limits (429 + Retry-After; judged from that pipeline, else one of its own) → the call path (apps/llm/acalls.py):
the response cache when the key or request opts in (the policy: apps/gateway/cache.py; a hit answers from
apps/llm/cache.py, before the budget), then the preflight hook that reserves the worst case on every budget that
applies (429 insufficient_quota; apps/gateway/budgets.py), with a recorder that settles it and writes the call's
record to Redis before the answer's last bytes (its reply is read after them, ADR 0133) → the answer (stored by the
call path if cacheable). A warm key's plain chat
call has its worst case reserved already in the stamp's pipeline (ADR 0126): the preflight keeps that hold, and a
request that ends without a call gives it back.
Headers: X-Portal-Request-Id, X-Portal-Tenant (metadata.tenant or the request header), X-Portal-Cache (hit/miss).
The secret is never logged: logs name a key by its prefix.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from apps.core import metrics, single_flight
from apps.core.asgi import serve_lifespan
from apps.costs.models import Operation
from apps.costs.services import UsageContext
from apps.gateway import (
    budgets,
    cache,
    guard,
    keys,
    limits,
    prompt_ref,
    recording,
    registry,
    tracing,
    wire,
)
from apps.gateway.keys import KeyCache, KeyInfo
from apps.gateway.wire import GatewayError
from apps.llm import acalls, observers
from apps.llm import selectors as llm_selectors
from apps.llm.errors import LlmError, StreamInterrupted

log = logging.getLogger(__name__)
JSON = b"application/json"


class Request:
    __slots__ = ("scope", "receive", "request_id", "tenant", "headers", "stamp", "info", "model", "operation",
                 "usage_context", "cache", "trace", "counted", "hold", "ahead_call", "recorder")

    def __init__(self, scope, receive):
        self.scope, self.receive = scope, receive
        self.request_id = f"{random.getrandbits(128):032x}"  # unique, not secret: uuid4's urandom is not needed
        self.headers = {name.lower(): value for name, value in scope.get("headers", ())}
        tenant = self.headers.get(b"x-portal-tenant", b"")
        self.tenant = tenant.decode("latin-1")[:120]
        self.stamp = b""
        # Known once the key is valid and the body parsed: a refusal after that is recorded as a usage event.
        self.info: KeyInfo | None = None
        self.model = self.operation = ""
        self.usage_context: UsageContext | None = None
        self.cache = b"miss"  # b"hit" once answered from the response cache
        self.trace: tracing.RequestTrace | None = None  # OpenTelemetry spans, when an exporter is configured
        self.counted: limits.Counted | None = None  # counted with the stamp read, judged in admit() (ADR 0077)
        self.hold: budgets.BudgetHold | None = None  # reserved with the stamp read (ADR 0126); given back if unused
        self.ahead_call: wire.ChatCall | None = None  # the call as parsed for that reservation
        self.recorder: recording.Recorder | None = None  # its answered call's record is confirmed after the answer

    async def body(self) -> bytes:
        limit = settings.GATEWAY_MAX_BODY_BYTES
        declared = self.headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise GatewayError(413, f"The body is larger than {limit} bytes.", code="body_too_large")
        chunks, size = [], 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ConnectionResetError
            piece = message.get("body", b"")
            size += len(piece)
            if size > limit:
                raise GatewayError(413, f"The body is larger than {limit} bytes.", code="body_too_large")
            chunks.append(piece)
            if not message.get("more_body"):
                return b"".join(chunks)

    def response_headers(self, content_type: bytes = JSON, extra: list | None = None) -> list:
        headers = [(b"content-type", content_type), (b"x-portal-request-id", self.request_id.encode()),
                   (b"x-portal-cache", self.cache)]
        if self.tenant:
            headers.append((b"x-portal-tenant", self.tenant.encode("latin-1", "replace")))
        return headers + (extra or [])


class Gateway:
    """The ASGI callable. One per process; caches keys and admission answers under the gateway stamp."""

    def __init__(self):
        self.keys = KeyCache()
        self.admitted: dict[int, tuple[bytes, float, tuple[str, str, int | None] | None]] = {}
        self.limited: dict = {}  # per key: the switch that lowered its limits (asked on a refusal only)
        self.prompts = prompt_ref.PromptRefs()  # prompt by reference: resolved targets under their stamps
        self.loading: dict = {}  # key loads in flight (single_flight)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send, on_shutdown=sync_to_async(close_old_connections))
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        route = (scope["method"], scope["path"].rstrip("/"))
        if route == ("GET", "/metrics"):
            await self.metrics(request, send)
            return
        handlers = {("POST", "/v1/chat/completions"): self.chat, ("POST", "/v1/embeddings"): self.embeddings,
                    ("GET", "/v1/models"): self.models}
        handler = handlers.get(route)
        endpoint = route[1] if handler is not None else "other"
        started, answered = time.perf_counter(), {"status": 500, "code": "ok"}

        async def send_observed(message):
            if message["type"] == "http.response.start":
                answered["status"] = message["status"]
                metrics.labelled(metrics.GATEWAY_LATENCY, endpoint).observe(time.perf_counter() - started)
            await send(message)

        if handler in (self.chat, self.embeddings):
            request.trace = tracing.begin()  # None when tracing is off
        traced = request.trace is not None
        observed = observers.current.set(request.trace) if traced else None
        try:
            await self.answer(request, send_observed, handler, handlers, route, answered)
        finally:
            metrics.labelled(metrics.GATEWAY_REQUESTS, endpoint, str(answered["status"]), answered["code"]).inc()
            if traced:
                request.trace.end(answered["status"], answered["code"])
                observers.current.reset(observed)

    async def answer(self, request: Request, send, handler, handlers, route, answered: dict) -> None:
        scope = request.scope
        try:
            if handler is None:
                known = {path for _method, path in handlers}
                if route[1] in known:
                    raise GatewayError(405, f"{scope['method']} is not allowed on {route[1]}.")
                raise GatewayError(404, f"No route {route[1]}: the gateway serves /v1/chat/completions, "
                                        "/v1/embeddings and /v1/models.", code="unknown_url")
            try:
                await handler(request, send)
            finally:
                if request.recorder is not None:  # the record written before the answer: Redis's reply (ADR 0133)
                    await request.recorder.confirm()
                if request.counted is not None:  # ended before admit() judged its count: take it back
                    await limits.uncount(request.counted)
                if request.hold is not None:  # reserved ahead, never taken by a call (a refusal): give it back
                    await request.hold.release_unused()
        except GatewayError as error:
            answered["code"] = error.code or "error"
            # A budget refusal or a guardrail block: the call path recorded it already.
            if request.info is not None and request.usage_context is not None and not error.recorded:
                await recording.refusal_record(request.info, context=request.usage_context, model=request.model,
                                               operation=request.operation, code=answered["code"],
                                               guardrail_actions=error.actions, switch_id=error.switch_id)
            await self._error(request, send, error)
        except ConnectionResetError:
            answered["code"] = "client_gone"
            return
        except LlmError as exc:
            error = wire.from_llm_error(exc)
            answered["code"] = error.code or "error"
            await self._error(request, send, error)
        except Exception:
            log.exception("gateway request %s failed", request.request_id)
            answered["code"] = "internal"
            await self._error(request, send, GatewayError(500, "The gateway failed; the request id is in "
                                                               "X-Portal-Request-Id.", code="internal"))

    async def _error(self, request: Request, send, error: GatewayError) -> None:
        extra = [(b"retry-after", str(error.retry_after).encode())] if error.retry_after else []
        extra += getattr(error, "headers", ())  # a budget refusal: x-should-retry
        await self._send(send, error.status, error.body(), request.response_headers(extra=extra))

    @staticmethod
    async def _send(send, status: int, body: bytes, headers: list) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    # -- the checks every endpoint makes -------------------------------------------------------------------
    async def authenticate(self, request: Request, *, count: bool = False, ahead=None) -> KeyInfo:
        header = request.headers.get(b"authorization", b"").decode("latin-1").strip()
        scheme, _, secret = header.partition(" ")
        secret = secret.strip()
        if not header:
            raise GatewayError(401, "Send your gateway key: 'Authorization: Bearer pk-gw-…'.", code="missing_key")
        if scheme.lower() != "bearer" or not keys.well_formed(secret):
            raise GatewayError(401, "The Authorization header does not hold a gateway key ('Bearer pk-gw-…').",
                               code="invalid_api_key")
        key_hash = keys.hash_secret(secret)
        if count:  # the stamp and the key's limit windows in one round trip (limits.stamp_and_count, ADR 0077),
            # with the call's budget reservation when `ahead(info)` knows it (ADR 0126)
            stamp, request.counted = await limits.stamp_and_count(self.keys, key_hash, ahead)
        else:
            stamp = await keys.stamp_read()
        request.stamp = stamp
        hit, info = self.keys.get(key_hash, stamp)
        if not hit:  # one load per key and stamp, however many requests wait for it (single_flight)
            info = await single_flight.shared(self.loading, (key_hash, stamp), lambda: self._load_key(key_hash, stamp))
        if info is None:
            raise GatewayError(401, "This gateway key is not valid.", code="invalid_api_key")
        refusal = info.refusal()
        if refusal:
            raise GatewayError(401, refusal, code="key_inactive")
        request.info = info
        return info

    async def admit(self, request: Request, info: KeyInfo, model: str) -> None:
        if not info.allows(model):
            raise GatewayError(403, f"This key may not use '{model}'; it may use: "
                                    f"{', '.join(info.allowed_aliases)}.", code="model_not_allowed", param="model")
        # request.stamp: read once per request, by authenticate()
        refusal = await registry.cached_answer(self.admitted, info, request.stamp, registry.admission_check,
                                               failure="An admission check could not run; try again.")
        if refusal:
            raise GatewayError(423, refusal[1], code=refusal[0], switch_id=refusal[2])
        counted, request.counted = request.counted, None
        hit = limits.verdict(counted) if counted is not None else await limits.admit(info)
        if hit is not None:
            switch = await registry.cached_answer(self.limited, info, request.stamp, registry.limit_switch,
                                                  failure="The key's limits could not be checked; try again.")
            raise GatewayError(429, hit.message, code="key_limit", retry_after=hit.retry_after,
                               switch_id=registry.limited_by(switch, hit.field, hit.used))

    def context(self, request: Request, info: KeyInfo, metadata: dict, *, model: str, operation: str,
                request_body=None) -> UsageContext:
        """Who this call is for; kept on the request so a refusal from here on is recorded too."""
        request.tenant = _tenant(request, metadata)
        request.model, request.operation = model, operation
        request.usage_context = _usage_context(request, info, request.tenant)
        if request.trace is not None:
            request.trace.bind(request_id=request.request_id, info=info, context=request.usage_context, model=model,
                               operation=operation, request=request_body)
        return request.usage_context

    async def _reserve_ahead(self, request: Request, info: KeyInfo, data: dict) -> budgets.Ahead | None:
        """The call's budget reservation for the key's first round trip (ADR 0126), when its worst case is known
        before it: a chat call on a model this key may use, not a prompt reference, not one the response cache may
        answer. None otherwise, or when anything is amiss: the call then reserves in its preflight as before, and
        anything wrong with the request is answered where it always was."""
        try:
            model = data.get("model")
            if (not isinstance(model, str) or model.strip().startswith(prompt_ref.PREFIX) or not info.allows(model)
                    or cache.policy_for(info, request.headers, "/v1/chat/completions") is not None):
                return None
            call = request.ahead_call = wire.parse_chat(data)
            context = _usage_context(request, info, _tenant(request, call.metadata))
            check = await acalls.chat_preflight_check(model=call.model, request=call.request, context=context)
            hold = budgets.BudgetHold(info)
            reservation = await hold.ahead(check)
        except Exception:  # noqa: BLE001 - see the docstring: the call path raises it again, where it is answered
            return None
        if reservation is not None:
            request.hold = hold
        return reservation

    async def _load_key(self, key_hash: str, stamp: bytes) -> KeyInfo | None:
        info = await sync_to_async(keys.key_info_load)(key_hash)
        self.keys.put(key_hash, stamp, info)
        return info

    # -- endpoints ---------------------------------------------------------------------------------------
    async def metrics(self, request: Request, send) -> None:
        """This process's Prometheus metrics (the gateway runs apart from the web, so it answers its own
        scrape), behind METRICS_TOKEN like the web's /metrics."""
        if not metrics.authorized(request.headers.get(b"authorization", b"").decode("latin-1")):
            await self._send(send, 401, b"metrics require the METRICS_TOKEN bearer token\n",
                             [(b"content-type", b"text/plain")])
            return
        body, content_type = metrics.render(shared=False)  # shared figures (deployment health): the web's scrape
        await self._send(send, 200, body, [(b"content-type", content_type.encode())])

    async def models(self, request: Request, send) -> None:
        info = await self.authenticate(request)
        names = await sync_to_async(_model_names)()
        prompts = await sync_to_async(prompt_ref.model_names)(info)  # `prompt:NAME@LABEL` the key may call
        body = wire.models_list([(name, owner) for name, owner in names if info.allows(name)] + prompts)
        await self._send(send, 200, body, request.response_headers())

    async def embeddings(self, request: Request, send) -> None:
        body = await request.body()
        info = await self.authenticate(request, count=True)
        model, texts, encoding, metadata = wire.parse_embeddings(wire.parse_json(body))
        context = self.context(request, info, metadata, model=model, operation=Operation.EMBEDDING)
        await self.admit(request, info, model)
        screen = await guard.screen_for(info, request.stamp)  # guardrails: the input policy (guard.py)
        texts = screen.texts_input(texts)
        hold = budgets.BudgetHold(info)  # reserved before the call (a cache hit reserves nothing), settled when recorded
        request.recorder = recording.Recorder(info, hold=hold, answer_first=True)
        recorder = screen.recorder(request.recorder)
        policy = cache.policy_for(info, request.headers, "/v1/embeddings")  # the response cache, when opted in
        result = await acalls.aembed(model=model, texts=texts, context=context, preflight=hold.preflight,
                                     recorder=recorder, cache=policy)
        if result.cache_hit:
            request.cache = b"hit"
        await self._send(send, 200, wire.embeddings(result, model=model, encoding=encoding),
                         request.response_headers())

    async def chat(self, request: Request, send) -> None:
        body = await request.body()
        try:  # parsed before the key's round trip, which may reserve the call's budget (ADR 0126); a 400 after it
            data, unparsed = wire.parse_json(body), None
        except GatewayError as error:
            data, unparsed = None, error
        info = await self.authenticate(request, count=True, ahead=None if data is None else (
            lambda cached: self._reserve_ahead(request, cached, data)))
        if unparsed is not None:
            raise unparsed
        prompt = await self.prompts.prepare(data, info, request.tenant)  # `model: "prompt:…"`: rendered into data (prompt_ref.py)
        call = request.ahead_call if prompt is None and request.ahead_call is not None else wire.parse_chat(data)
        context = self.context(request, info, call.metadata, model=call.model, operation=Operation.CHAT,
                               request_body=call.request)
        # The usage row carries the version; the kill switch and a feature off (423); a stricter filters' policy.
        required = await self.prompts.admit(prompt, context, request.stamp)
        await self.admit(request, info, call.model)
        screen = await guard.screen_for(info, request.stamp, required)  # guardrails (guard.py): input now, output below
        call = screen.chat_input(call)
        end_user = recording.end_user_hash(info.team_id, data, call.metadata)  # adoption (scorecards)
        # reserved before the call (with the key's round trip, or in its preflight; a hit reserves nothing), settled
        # with the record
        hold = request.hold if request.hold is not None and request.hold.info is info else budgets.BudgetHold(info)
        request.recorder = recording.Recorder(info, end_user, hold, answer_first=True)
        recorder = screen.recorder(request.recorder)
        completion_id = f"chatcmpl-{request.request_id}"
        # The response cache (llm/cache.py), when opted in (by the key or request; by the version for `prompt:`);
        # not with an output scan: an answer the scan changed is not what a replay should serve. The prompt version
        # is in the context (prompts.admit above).
        opt_in = {} if prompt is None else {"version_cache": prompt.cache}
        policy = None if screen.scans_output else cache.policy_for(info, request.headers, "/v1/chat/completions",
                                                                   **opt_in)
        if not call.stream:
            result = await acalls.achat(model=call.model, request=call.request, context=context,
                                        preflight=hold.preflight, recorder=recorder, cache=policy,
                                        switches=False)  # this front door decided (admit, the screen)
            if result.cache_hit:
                request.cache = b"hit"
            else:  # its tokens were counted against the key's limits with its record (recording.Recorder)
                result = await screen.chat_output(result)  # the output policy (may redact, or block)
                await recording.keep_body(info, context=context, call=call, result=result)  # opt-in sampled bodies
            await self._send(send, 200, wire.completion(result, model=call.model, completion_id=completion_id),
                             request.response_headers())
            return
        stream = acalls.achat_stream(model=call.model, request=call.request, context=context,
                                     preflight=hold.preflight, recorder=recorder, cache=policy,
                                     switches=False)
        await stream.open()  # raises (recorded) before any byte: the client gets a plain error answer
        if stream.cache_hit:
            request.cache = b"hit"
        gone = asyncio.ensure_future(request.receive())  # after the body: answers only when the client goes
        try:
            await self._stream(request, _until_gone(send, gone), stream, call, info, context, screen, completion_id)
        except ConnectionResetError:  # gone before the stream's first bytes: stopped and recorded all the same
            await stream.aclose()
            raise
        finally:
            gone.cancel()
            if gone.done() and not gone.cancelled():
                gone.exception()  # a server's error here means the client is gone: handled as such above

    async def _stream(self, request: Request, send, stream, call, info, context, screen, completion_id) -> None:
        created = int(time.time())
        await send({"type": "http.response.start", "status": 200,
                    "headers": request.response_headers(b"text/event-stream",
                                                         [(b"cache-control", b"no-cache")])})
        first = wire.chunk(completion_id=completion_id, model=call.model, created=created,
                           delta={"role": "assistant", "content": ""}, include_usage=call.include_usage)
        await send({"type": "http.response.body", "body": first, "more_body": True})
        tools_streamed = False
        try:
            async for delta in screen.relay(stream):  # the output scan's hold-back window
                tools_streamed = tools_streamed or bool(delta.tool_calls)
                piece = wire.chunk(completion_id=completion_id, model=call.model, created=created,
                                   delta=wire.stream_delta(delta), include_usage=call.include_usage)
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        except guard.Blocked as exc:  # recorded; after the stream's start: an error event, never a clean end
            await send({"type": "http.response.body", "body": wire.stream_error(exc), "more_body": False})
            return
        except StreamInterrupted as exc:  # recorded by the call path; the client must not see a clean end
            await send({"type": "http.response.body", "body": wire.stream_error(wire.from_llm_error(exc)),
                        "more_body": False})
            return
        except Exception as exc:
            if isinstance(exc, OSError | ConnectionResetError):
                await stream.aclose()
                return
            log.exception("gateway stream %s failed", request.request_id)
            await stream.aclose()
            error = GatewayError(500, "The gateway failed mid-stream; the answer is incomplete.", code="internal")
            await send({"type": "http.response.body", "body": wire.stream_error(error), "more_body": False})
            return
        result = stream.result  # its record written to Redis before the last bytes below (confirmed after them)
        if not result.cache_hit:
            await recording.keep_body(info, context=context, call=call, result=result)  # opt-in sampled bodies
        tail = wire.final_chunks(result, completion_id=completion_id, model=call.model, created=created,
                                 include_usage=call.include_usage, tools_streamed=tools_streamed)
        await send({"type": "http.response.body", "body": tail, "more_body": False})


def _until_gone(send, gone: asyncio.Future):
    """`send` for a stream, raising ConnectionResetError once the client has gone. An ASGI server drops a send to a
    gone client silently (uvicorn does); `receive()` says so, and the stream path then closes the upstream and
    records the call as far as it streamed, at its next chunk, not when the upstream would have ended."""

    async def send_while_there(message) -> None:
        if gone.done():
            raise ConnectionResetError
        await send(message)

    return send_while_there


def _tenant(request: Request, metadata: dict) -> str:
    return (metadata.get("tenant") or request.tenant)[:120]


def _usage_context(request: Request, info: KeyInfo, tenant: str) -> UsageContext:
    return UsageContext(source="gateway", team_id=info.team_id, feature=info.feature, use_case_id=info.use_case_id,
                        tenant=tenant, request_id=request.request_id)


def _model_names() -> list[tuple[str, str]]:
    """The names a call may take: the active aliases first (owned by "portal"), then the catalog's models."""
    aliases = [(name, "portal") for name in llm_selectors.alias_names()]
    return aliases + [(m.name, m.provider.name) for m in llm_selectors.model_list()]


application = Gateway()
