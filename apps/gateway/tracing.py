"""OpenTelemetry GenAI spans for the gateway's calls, when an exporter is configured (ADR 0078).

One SERVER span per chat or embeddings request, named "<operation> <model asked for>", and one CLIENT child per
upstream attempt, named "<operation> <upstream model>": a fallback shows as failed siblings (each with its
`error.type`) before the attempt that answered. Attributes follow the GenAI semantic conventions
(gen_ai.operation.name, gen_ai.request.model, gen_ai.response.model, gen_ai.provider.name and the older
gen_ai.system, gen_ai.usage.*, server.address, error.type) plus the portal's own (portal.request_id, team,
feature, tenant, use case, alias, deployment, fallbacks, the key's prefix — never its secret).

On when GATEWAY_OTEL_TRACES is on and an exporter is configured the standard way (OTEL_TRACES_EXPORTER
`otlp`/`console`, or an OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT); the SDK reads the rest of the OTEL_* variables
(headers, compression, timeout, service name, batch sizes). The provider is built in the serving process on its
first request (after any fork) and exports from a background thread (BatchSpanProcessor): a request only
creates spans. Off, nothing is imported or created: `begin()` answers None and the call path's observer slot
(apps/llm/observers.py) stays empty.

The spans carry `portal.ledger.recorded`: the portal's own OTLP ingest skips them (the ledger already holds
these calls), so pointing the exporter at the portal never counts a call twice.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

from django.conf import settings

from apps.costs.models import CallStatus, Operation
from apps.costs.otlp import ATTR_RECORDED
from apps.llm.callcore import error_type_of
from apps.llm.results import CallRecord

log = logging.getLogger(__name__)
SCOPE = "genai-portal.gateway"
SERVICE_NAME = "genai-portal-gateway"
EXPORTERS = ("otlp", "console")
# gen_ai.provider.name's well-known values for the provider kinds that have one; the others keep their kind.
PROVIDER_NAMES = {"openai": "openai", "azure_openai": "azure.ai.openai"}
_state: dict = {"checked": False, "tracer": None, "provider": None}
_servers: dict[str, tuple[str | None, int | None]] = {}


def configured() -> bool:
    """Whether the settings ask for spans: the portal's switch, and an exporter named or an endpoint given."""
    if not settings.GATEWAY_OTEL_TRACES:
        return False
    names = _exporter_names()
    if names == ["none"]:
        return False
    return bool(names) or bool(settings.OTEL_EXPORTER_OTLP_ENDPOINT or settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)


def _exporter_names() -> list[str]:
    return [n.strip() for n in (settings.OTEL_TRACES_EXPORTER or "").split(",") if n.strip()]


def traces_endpoint() -> str | None:
    """The OTLP/HTTP traces URL: the traces endpoint as given, or the base endpoint + /v1/traces (the spec's
    rule); None lets the SDK use its default (http://localhost:4318/v1/traces)."""
    if settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT:
        return settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
    if settings.OTEL_EXPORTER_OTLP_ENDPOINT:
        return settings.OTEL_EXPORTER_OTLP_ENDPOINT.rstrip("/") + "/v1/traces"
    return None


def exporters_from_settings() -> list:
    out = []
    for name in _exporter_names() or ["otlp"]:
        if name == "otlp":
            # why: the exporter (and protobuf) load only when tracing is on
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            out.append(OTLPSpanExporter(endpoint=traces_endpoint()))
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter  # why: as above

            out.append(ConsoleSpanExporter())
        elif name != "none":
            log.warning("OTEL_TRACES_EXPORTER %r is not one the gateway supports (%s): ignored", name,
                        ", ".join(EXPORTERS))
    return out


def install(exporters: list, *, batch: bool = True):
    """Build this process's tracer provider with `exporters` (batched, or exported as each span ends)."""
    # why: the SDK loads only when tracing is on
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, read by the SDK
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    _state.update(checked=True, provider=provider, tracer=provider.get_tracer(SCOPE))
    return provider


def reset() -> None:
    """Flush and drop the provider; the next request decides again from the settings (tests, a reload)."""
    provider = _state["provider"]
    _state.update(checked=False, provider=None, tracer=None)
    if provider is not None:
        provider.shutdown()


def provider():
    """This process's tracer provider, None while tracing is off (or before the first request)."""
    return _state["provider"]


def _tracer():
    if not _state["checked"]:
        _state["checked"] = True
        if configured():
            exporters = exporters_from_settings()
            if exporters:
                install(exporters)
    return _state["tracer"]


def begin() -> RequestTrace | None:
    """A request's trace, None when tracing is off (the only cost then: this call)."""
    tracer = _tracer()
    return RequestTrace(tracer) if tracer is not None else None


def _server(provider) -> tuple[str | None, int | None]:
    """(host, port) a provider's calls go to, from its base URL (cached per URL)."""
    url = provider.base_url or ("https://api.openai.com/v1" if provider.kind == "openai" else "")
    if url not in _servers:
        parts = urlsplit(url) if url else None
        try:
            port = parts.port if parts else None
        except ValueError:
            port = None
        _servers[url] = (parts.hostname if parts else None, port)
    return _servers[url]


def _provider_attributes(model) -> dict:
    kind = model.provider.kind
    name = PROVIDER_NAMES.get(kind, kind)
    attributes = {"gen_ai.provider.name": name, "gen_ai.system": name, "portal.provider": model.provider.name}
    host, port = _server(model.provider)
    if host:
        attributes["server.address"] = host
        if port:
            attributes["server.port"] = port
    return attributes


def _usage_attributes(record: CallRecord) -> dict:
    tokens = record.tokens
    attributes = {"gen_ai.usage.input_tokens": tokens.input_tokens,
                  "gen_ai.usage.output_tokens": tokens.output_tokens}
    if tokens.cached_input_tokens:
        attributes["gen_ai.usage.cache_read.input_tokens"] = tokens.cached_input_tokens
    if tokens.reasoning_tokens:
        attributes["gen_ai.usage.reasoning.output_tokens"] = tokens.reasoning_tokens
    return attributes


def _answer_attributes(record: CallRecord, answer) -> dict:
    attributes = {"gen_ai.response.model": getattr(answer, "remote_model", "") or record.model,
                  **_usage_attributes(record)}
    finish = getattr(answer, "finish_reason", None)
    if finish:
        attributes["gen_ai.response.finish_reasons"] = [finish]
    return attributes


class RequestTrace:
    """One request's spans; also the call path's observer (apps/llm/observers.CallObserver) for the request."""

    __slots__ = ("tracer", "started_ns", "operation", "span", "parent", "attempts", "record", "answer", "upstream")

    def __init__(self, tracer):
        self.tracer = tracer
        self.started_ns = time.time_ns()
        self.operation = "chat"
        self.span = self.parent = None
        self.attempts: list = []
        self.record: CallRecord | None = None
        self.answer = None
        self.upstream: dict = {}  # the last attempt's provider and server: the request span's too

    def bind(self, *, request_id: str, info, context, model: str, operation: str, request=None) -> None:
        """The request span starts (at the request's arrival) once the key and the model are known."""
        from opentelemetry.trace import SpanKind, set_span_in_context  # why: loaded only when tracing is on

        self.operation = "embeddings" if operation == Operation.EMBEDDING else "chat"
        attributes = {"gen_ai.operation.name": self.operation, "gen_ai.request.model": model,
                      "portal.request_id": request_id, "portal.team_id": info.team_id,
                      "portal.feature": info.feature, "portal.gateway.key_prefix": info.prefix,
                      ATTR_RECORDED: True}
        if context.tenant:
            attributes["portal.tenant"] = context.tenant
        if info.use_case_id is not None:
            attributes["portal.use_case_id"] = info.use_case_id
        if request is not None:
            if request.max_tokens is not None:
                attributes["gen_ai.request.max_tokens"] = request.max_tokens
            if request.temperature is not None:
                attributes["gen_ai.request.temperature"] = float(request.temperature)
        self.span = self.tracer.start_span(f"{self.operation} {model}", kind=SpanKind.SERVER,
                                           start_time=self.started_ns, attributes=attributes)
        self.parent = set_span_in_context(self.span)

    # -- the call path's observer ------------------------------------------------------------------------
    def attempt_begin(self, target):
        if self.span is None:
            return None
        from opentelemetry.trace import SpanKind  # why: as above

        model = target.model
        self.upstream = _provider_attributes(model)
        attributes = {"gen_ai.operation.name": self.operation, "gen_ai.request.model": model.remote_name,
                      "portal.model": model.name, **self.upstream, ATTR_RECORDED: True}
        if target.deployment:
            attributes["portal.deployment"] = target.deployment
        span = self.tracer.start_span(f"{self.operation} {model.remote_name}", context=self.parent,
                                      kind=SpanKind.CLIENT, attributes=attributes)
        self.attempts.append(span)
        return span

    def attempt_end(self, handle, error: BaseException | None) -> None:
        if handle is None:
            return
        if error is not None:
            _failed(handle, error_type_of(error))
        handle.end()
        self.attempts = [span for span in self.attempts if span is not handle]

    def recorded(self, record: CallRecord, answer) -> None:
        """The call's record: the answering attempt ends with the answer's model and usage."""
        self.record, self.answer = record, answer
        for span in self.attempts:
            if record.status == CallStatus.OK:
                span.set_attributes(_answer_attributes(record, answer))
            else:
                _failed(span, record.error_type or "error")
            span.end()
        self.attempts = []

    # -- the end --------------------------------------------------------------------------------------------
    def end(self, status: int, code: str) -> None:
        """The request answered with `status` (`code`: the gateway's error code, "ok", or "client_gone")."""
        if self.span is None:
            return
        for span in self.attempts:  # still open: the client left before the call ended
            _failed(span, code if code != "ok" else "incomplete")
            span.end()
        self.attempts = []
        span, record = self.span, self.record
        span.set_attribute("http.response.status_code", status)
        span.set_attributes(self.upstream)
        error = code if (status >= 400 or code == "client_gone") else None
        if record is not None:
            span.set_attributes({"portal.fallbacks": record.fallbacks, "portal.latency_ms": record.latency_ms})
            if record.alias:
                span.set_attribute("portal.alias", record.alias)
            if record.deployment:
                span.set_attribute("portal.deployment", record.deployment)
            if record.upstream_ms is not None:
                span.set_attribute("portal.upstream_ms", record.upstream_ms)
            if record.ttft_ms is not None:
                span.set_attribute("portal.ttft_ms", record.ttft_ms)
            if record.status == CallStatus.OK:
                span.set_attributes(_answer_attributes(record, self.answer))
            else:
                error = error or record.error_type or "error"
            if record.provider:
                span.set_attribute("portal.provider", record.provider)
        if error:
            _failed(span, error)
        span.end()


def _failed(span, error_type: str) -> None:
    from opentelemetry.trace import Status, StatusCode  # why: loaded only when tracing is on

    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR))  # no description: an upstream's message is not ours to export
