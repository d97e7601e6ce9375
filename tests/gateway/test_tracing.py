"""OpenTelemetry GenAI spans of gateway calls (apps/gateway/tracing.py): one server span per request, a client
span per upstream attempt (a fallback shows), the GenAI attributes and the portal's, never key material; sent
by the SDK's own exporters (in memory, and OTLP/HTTP to a local collector); nothing created when off."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from openai import OpenAI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from apps.costs import otlp
from apps.gateway import tracing
from apps.llm import observers
from apps.llm.aliases import alias_create, deployment_create
from apps.llm.models import ModelKind
from tests.support.standin import standin_model, standin_provider

QUESTION = [{"role": "user", "content": "How long do refunds take?"}]


@pytest.fixture
def fallback_alias(llm_standin, transactional_db):
    """An alias whose first tier always answers 503 and whose second tier answers."""
    provider = standin_provider(llm_standin)
    alias = alias_create(name="traced-chat", kind=ModelKind.CHAT)
    deployment_create(alias=alias, model=standin_model(provider, "svc-down", remote_name="fail-503"), priority=0)
    deployment_create(alias=alias, model=standin_model(provider, "svc-up", remote_name="standin-chat"), priority=1)
    return alias


@pytest.fixture
def spans():
    """Spans as the gateway ends them, in the SDK's in-memory exporter."""
    memory = InMemorySpanExporter()
    tracing.install([memory], batch=False)
    yield memory
    tracing.reset()


class Collector(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def collector():
    """A tiny OTLP/HTTP collector on a free port: the raw export bodies it received."""
    Collector.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Collector.bodies
    server.shutdown()
    server.server_close()


def _finished(spans, servers: int) -> tuple:
    """The finished spans once `servers` server spans have ended: the gateway ends a request's span after the
    client has its answer, so the test waits for it (up to 10 s) rather than racing it."""
    deadline = time.monotonic() + 10
    while True:
        finished = spans.get_finished_spans()
        if sum(s.kind == SpanKind.SERVER for s in finished) >= servers or time.monotonic() > deadline:
            return finished
        time.sleep(0.01)


def _exported(bodies: list, spans: int) -> list:
    """The spans the collector received once `spans` have arrived: the gateway ends a request's server span after
    the client has its answer, so the test flushes until it is there (up to 10 s) rather than racing it."""
    deadline = time.monotonic() + 10
    while True:
        tracing.provider().force_flush()
        received = [span for body in list(bodies) for span in otlp.spans_from_protobuf(body)[0]]
        if len(received) >= spans or time.monotonic() > deadline:
            return received
        time.sleep(0.01)


def _by_kind(finished):
    server = [s for s in finished if s.kind == SpanKind.SERVER]
    client = sorted((s for s in finished if s.kind == SpanKind.CLIENT), key=lambda s: s.start_time)
    return server, client


def _no_key_material(values, secret: str) -> None:
    body = secret.split("-", 3)[-1]  # the random part after pk-gw-<id>-
    for value in values:
        assert secret not in str(value) and body not in str(value)


def test_a_call_with_a_fallback_is_one_server_span_with_a_client_span_per_attempt(
        gateway_url, fallback_alias, gateway_key, spans):
    key, secret = gateway_key()
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    raw = sdk.chat.completions.with_raw_response.create(model="traced-chat", messages=QUESTION, max_tokens=50,
                                                        metadata={"tenant": "acme"})
    answer = raw.parse()

    (server,), (failed, answered) = _by_kind(_finished(spans, 1))
    assert server.name == "chat traced-chat"
    assert server.attributes["gen_ai.operation.name"] == "chat"
    assert server.attributes["gen_ai.request.model"] == "traced-chat"
    assert server.attributes["gen_ai.response.model"] == "standin-chat"
    assert server.attributes["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert server.attributes["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens
    assert server.attributes["gen_ai.request.max_tokens"] == 50
    assert server.attributes["portal.request_id"] == raw.headers["x-portal-request-id"]
    assert (server.attributes["portal.team_id"], server.attributes["portal.feature"],
            server.attributes["portal.tenant"]) == (key.team_id, key.feature, "acme")
    assert server.attributes["portal.gateway.key_prefix"] == key.prefix
    assert server.attributes["portal.fallbacks"] == 1 and server.attributes["portal.deployment"]
    assert server.attributes["server.address"] == "127.0.0.1"  # the upstream that answered
    assert server.attributes["gen_ai.provider.name"] == "openai_compatible"
    assert server.status.status_code != StatusCode.ERROR and "error.type" not in server.attributes
    # The attempts: children of the request span, the first failed (503) and the second answered.
    assert {failed.parent.span_id, answered.parent.span_id} == {server.context.span_id}
    assert (failed.attributes["gen_ai.request.model"], answered.attributes["gen_ai.request.model"]) == (
        "fail-503", "standin-chat")
    assert failed.status.status_code == StatusCode.ERROR and failed.attributes["error.type"]
    assert "error.type" not in answered.attributes
    assert answered.attributes["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens
    for attempt in (failed, answered):
        assert attempt.attributes["gen_ai.provider.name"] == attempt.attributes["gen_ai.system"]
        assert attempt.attributes["server.address"] == "127.0.0.1"
    _no_key_material([v for s in (server, failed, answered) for v in s.attributes.values()], secret)


def test_a_stream_and_a_failed_call_are_traced_with_their_usage_and_error_type(
        gateway_url, fallback_alias, gateway_key, spans, llm_standin):
    _key, secret = gateway_key()
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    chunks = list(sdk.chat.completions.create(model="traced-chat", messages=QUESTION, stream=True,
                                              stream_options={"include_usage": True}))
    usage = chunks[-1].usage
    llm_standin.standin.control({"outage": True})
    with pytest.raises(Exception):  # noqa: B017 - the SDK's 502 type is not the point here
        sdk.chat.completions.create(model="traced-chat", messages=QUESTION)

    streamed, failed = sorted(_by_kind(_finished(spans, 2))[0], key=lambda s: s.start_time)
    assert streamed.attributes["gen_ai.usage.output_tokens"] == usage.completion_tokens > 0
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.attributes["http.response.status_code"] == 502
    assert failed.attributes["error.type"] == "upstream_unavailable"


def test_the_sdks_otlp_http_exporter_delivers_the_spans_to_a_collector(
        gateway_url, fallback_alias, gateway_key, collector, settings):
    url, bodies = collector
    settings.OTEL_EXPORTER_OTLP_ENDPOINT = url  # as the environment variable would: /v1/traces is appended
    tracing.reset()
    try:
        key, secret = gateway_key()
        OpenAI(base_url=gateway_url, api_key=secret, max_retries=0).chat.completions.create(
            model="traced-chat", messages=QUESTION)
        assert tracing.provider() is not None
        received = _exported(bodies, spans=3)
    finally:
        tracing.reset()

    server = next(s for s in received if s.attributes.get("gen_ai.request.model") == "traced-chat")
    assert server.attributes["gen_ai.operation.name"] == "chat"
    assert server.attributes["portal.gateway.key_prefix"] == key.prefix
    assert server.resource["service.name"] == tracing.SERVICE_NAME
    assert len(received) == 3  # the request and its two attempts
    assert all(secret.encode() not in body and secret.split("-", 3)[-1].encode() not in body for body in bodies)
    # Sent to the portal's own OTLP ingest, these spans add nothing: the ledger has the calls already.
    assert all(otlp.protobuf_to_events(body).events == [] for body in bodies)


def test_with_no_exporter_configured_no_tracer_provider_is_created(gateway_url, local_catalog, gateway_key):
    tracing.reset()
    _key, secret = gateway_key()
    OpenAI(base_url=gateway_url, api_key=secret, max_retries=0).chat.completions.create(
        model="chat", messages=QUESTION)
    assert tracing.provider() is None and not tracing.configured()
    assert observers.current.get() is None


def test_the_switch_and_the_standard_variables_decide(settings):
    settings.OTEL_EXPORTER_OTLP_ENDPOINT = "http://collector:4318"
    assert tracing.configured() and tracing.traces_endpoint() == "http://collector:4318/v1/traces"
    settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "http://other:4318/custom"
    assert tracing.traces_endpoint() == "http://other:4318/custom"
    settings.OTEL_TRACES_EXPORTER = "none"
    assert not tracing.configured()
    settings.OTEL_TRACES_EXPORTER = "console"
    settings.GATEWAY_OTEL_TRACES = False
    assert not tracing.configured()


def test_a_refusal_and_an_embeddings_call_are_traced_too(gateway_url, llm_standin, gateway_key, spans):
    standin_model(standin_provider(llm_standin), "svc-embed", remote_name="embed-8", kind=ModelKind.EMBEDDING)
    _key, secret = gateway_key(allowed_aliases=["svc-embed"])
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    sdk.embeddings.create(model="svc-embed", input=["refunds"])
    with pytest.raises(Exception):  # noqa: B017 - PermissionDeniedError; the span is the point
        sdk.chat.completions.create(model="traced-chat", messages=QUESTION)

    embedded, refused = sorted(_by_kind(_finished(spans, 2))[0], key=lambda s: s.start_time)
    assert embedded.name == "embeddings svc-embed" and embedded.attributes["gen_ai.usage.input_tokens"] > 0
    assert refused.attributes["http.response.status_code"] == 403
    assert refused.attributes["error.type"] == "model_not_allowed"
