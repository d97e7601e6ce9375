"""POST /api/v1/otlp/v1/traces with bodies of the wrong shape: a 400 with the reason for a broken envelope, the
spec's partialSuccess for spans that were skipped — never a 500, which OTLP exporters drop without retrying.
Protobuf (opentelemetry-proto) and gzip are read too, with a bound on the inflated size."""

import gzip
import json

import pytest
from django.test import Client

from apps.costs.models import UsageEvent

pytestmark = pytest.mark.django_db

URL = "/api/v1/otlp/v1/traces"


def span(span_id: str, **attributes) -> dict:
    attrs = [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
             {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "100"}}]
    attrs += [{"key": k.replace("__", "."), "value": v} for k, v in attributes.items()]
    return {"traceId": "ab" * 16, "spanId": span_id, "startTimeUnixNano": "", "attributes": attrs}


def export(*spans, resource_attributes=None) -> dict:
    return {"resourceSpans": [{"resource": {"attributes": resource_attributes or []},
                               "scopeSpans": [{"spans": list(spans)}]}]}


@pytest.fixture
def send(ingest_token):
    _, secret = ingest_token
    client = Client(raise_request_exception=False)

    def post(body, content_type="application/json", **headers):
        data = body if isinstance(body, bytes | str) else json.dumps(body)
        return client.post(URL, data=data, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {secret}",
                           **headers)

    return post


@pytest.mark.parametrize("body,where", [
    ('{"resourceSpans":[{"scopeSpans":["x"]}]}', "scopeSpans[0] must be an object"),
    ('{"resourceSpans":[{"scopeSpans":[{"spans":5}]}]}', "spans must be a list"),
    ('{"resourceSpans":[{"resource":{"attributes":5},"scopeSpans":[]}]}', "attributes must be a list"),
    ('{"resourceSpans":[5]}', "resourceSpans[0] must be an object"),
    ("[" * 200_000, "nested too deeply"),
])
def test_an_envelope_of_the_wrong_shape_is_a_400_with_the_reason(send, body, where):
    response = send(body)

    assert response.status_code == 400, response.content
    assert where in response.json()["detail"]


def test_spans_of_the_wrong_shape_are_skipped_and_counted_in_partial_success(send, prices):
    body = export(
        span("01", gen_ai__response__finish_reasons={"arrayValue": [1]}),  # odd array: ignored, span kept
        {"spanId": "02", "attributes": 5},
        span("03", gen_ai__usage__output_tokens={"doubleValue": float("inf")}),
        "not a span",
        span("05", gen_ai__request__model={"stringValue": "gpt\x00"}),
        span("06"),
        span("07", gen_ai__usage__output_tokens={"kvlistValue": {"values": []}}),  # not read as zero tokens
    )

    response = send(json.dumps(body))  # json writes the infinite token count as Infinity, as the fuzzer did

    assert response.status_code == 200, response.content
    result = response.json()
    assert (result["accepted"], result["partialSuccess"]["rejectedSpans"]) == (2, 5)
    message = result["partialSuccess"]["errorMessage"]
    assert "spans[1]: attributes must be a list" in message and "spans[3]: a span must be an object" in message
    assert "spans[2]: output_tokens must be a whole number" in message
    assert "spans[4]: model contains a NUL" in message
    assert "spans[6]: output_tokens must be a whole number" in message
    assert UsageEvent.objects.count() == 2


def test_a_gzip_body_is_read_and_a_gzip_bomb_is_a_413(send, prices, settings):
    accepted = send(gzip.compress(json.dumps(export(span("01"))).encode()), HTTP_CONTENT_ENCODING="gzip")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    bomb = send(gzip.compress(b" " * (64 * 1024 * 1024)), HTTP_CONTENT_ENCODING="gzip")

    assert accepted.status_code == 200 and accepted.json()["accepted"] == 1
    assert bomb.status_code == 413 and "inflates to more than" in bomb.json()["detail"]


def test_a_protobuf_export_is_decoded_and_answered_in_protobuf(send, prices, team):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    def kv(key, **value):
        return KeyValue(key=key, value=AnyValue(**value))

    good = Span(trace_id=bytes(range(16)), span_id=bytes(range(8)), attributes=[
        kv("gen_ai.request.model", string_value="gpt-4o-mini"), kv("gen_ai.usage.input_tokens", int_value=120),
        kv("gen_ai.usage.output_tokens", int_value=30)])
    bad = Span(trace_id=bytes(range(16)), span_id=b"\x09" * 8, attributes=[
        kv("gen_ai.request.model", string_value="gpt-4o-mini"), kv("gen_ai.usage.input_tokens", double_value=1.5)])
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=[kv("portal.feature", string_value="answer")]),
        scope_spans=[ScopeSpans(spans=[good, bad])])])

    response = send(request.SerializeToString(), content_type="application/x-protobuf")

    assert response.status_code == 200 and response["Content-Type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "input_tokens must be a whole number" in answer.partial_success.error_message
    row = UsageEvent.objects.get()
    assert row.request_id == f"otlp-{bytes(range(16)).hex()}-{bytes(range(8)).hex()}"
    assert (row.input_tokens, row.output_tokens, row.feature, row.team_id) == (120, 30, "answer", team.pk)
