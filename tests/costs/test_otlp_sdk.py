"""The OpenTelemetry Python SDK's own OTLP/HTTP exporters (protobuf, the default, and JSON) send GenAI spans to
the live portal; the spans land in the usage ledger, priced and attributed from resource attributes."""

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from apps.costs.models import UsageEvent


def genai_spans(team_slug: str, feature: str):
    """Two chat calls and one failed call, recorded by the SDK as an instrumentation would (gen_ai.* names)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot", "portal.team": team_slug,
                                                        "portal.feature": feature, "portal.tenant": "acme"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    for input_tokens, output_tokens in ((1200, 40), (300, 12)):
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as span:
            span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                 "gen_ai.request.model": "gpt-4o-mini",
                                 "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                                 "gen_ai.usage.input_tokens": input_tokens,
                                 "gen_ai.usage.output_tokens": output_tokens,
                                 "gen_ai.response.finish_reasons": ["stop"]})
    with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as span:
        span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                             "gen_ai.request.model": "gpt-4o", "error.type": "APITimeoutError"})
        span.set_status(StatusCode.ERROR)
    with tracer.start_as_current_span("GET /health"):  # not a model call: skipped
        pass
    provider.shutdown()
    return memory.get_finished_spans()


@pytest.fixture
def endpoint(live_server, engineer, team, token_for, prices):
    _, secret = token_for(engineer, team, scope="ingest")
    return f"{live_server.url}/api/v1/otlp/v1/traces", {"Authorization": f"Bearer {secret}"}


def assert_ledger(team, feature: str, spans) -> None:
    rows = {r.request_id: r for r in UsageEvent.objects.filter(feature=feature)}
    chats = [s for s in spans if s.name.startswith("chat")]
    assert len(rows) == 3
    for span in chats:
        row = rows[f"otlp-{span.context.trace_id:032x}-{span.context.span_id:016x}"]
        assert (row.team_id, row.tenant, row.source, row.model) == (team.pk, "acme", "gateway",
                                                                    span.attributes["gen_ai.request.model"])
        assert row.input_tokens == span.attributes.get("gen_ai.usage.input_tokens", 0)
    assert sorted(r.status for r in rows.values()) == ["error", "ok", "ok"]
    assert all(r.cost is not None for r in rows.values() if r.model == "gpt-4o-mini")


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_the_sdks_protobuf_exporter_lands_genai_spans_in_the_ledger(endpoint, team, compression):
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    url, headers = endpoint
    spans = genai_spans(team.slug, f"proto-{compression}")
    exporter = OTLPSpanExporter(endpoint=url, headers=headers, timeout=30,
                                compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression)

    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert_ledger(team, f"proto-{compression}", spans)
    assert exporter.export(spans) == SpanExportResult.SUCCESS  # re-export: idempotent
    assert UsageEvent.objects.filter(feature=f"proto-{compression}").count() == 3


def test_the_sdks_json_exporter_lands_genai_spans_in_the_ledger(endpoint, team):
    from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter

    url, headers = endpoint
    spans = genai_spans(team.slug, "json")

    assert OTLPSpanExporter(endpoint=url, headers=headers, timeout=30).export(spans) == SpanExportResult.SUCCESS
    assert_ledger(team, "json", spans)
