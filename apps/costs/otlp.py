"""OTLP/HTTP traces (protobuf or JSON, optionally gzip) → usage events, from the OpenTelemetry GenAI semantic
conventions.

A span is a model call when it carries gen_ai.* attributes; other spans (HTTP, DB…) in the same export are
skipped, not rejected. Attribution (team, feature, tenant) comes from resource attributes, overridable per span.
Both the current names (gen_ai.provider.name, gen_ai.usage.input_tokens …) and the deprecated ones
(gen_ai.system, gen_ai.usage.prompt_tokens / completion_tokens) are read.

Both encodings become the same `SpanIn` rows first: protobuf is decoded with `opentelemetry-proto` (never by
hand), JSON is checked shape by shape (OTLP JSON encodes 64-bit integers as strings and ids as hex). A body of
the wrong shape raises `OtlpShapeError` (the API answers 400 with the reason: OTLP treats 5xx as
non-retryable, so spans would be lost silently); a span of the wrong shape is skipped and reported in the
spec's `partialSuccess`.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from apps.costs.models import CallStatus, Operation, Source

ATTR_TEAM = ("portal.team", "team", "team.name")
ATTR_FEATURE = ("portal.feature", "feature", "app.feature")
ATTR_TENANT = ("portal.tenant", "tenant", "tenant.id", "enduser.tenant")
ATTR_PROMPT = ("portal.prompt.name", "gen_ai.prompt.name", "prompt.name")
ATTR_PROMPT_VERSION = ("portal.prompt.version", "gen_ai.prompt.version", "prompt.version")
ATTR_SOURCE = ("portal.source",)
# Set on the spans the portal's own gateway exports (apps/gateway/tracing.py): those calls are on the ledger
# already, so this ingest skips them rather than count them twice.
ATTR_RECORDED = "portal.ledger.recorded"
EMBEDDING_OPERATIONS = {"embeddings", "embedding"}
MAX_ATTRIBUTE_DEPTH = 8
PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")


class OtlpShapeError(ValueError):
    """The export is not an ExportTraceServiceRequest; the message says where."""


class OtlpTooLarge(ValueError):
    """The body inflates past the limit."""


class _Unreadable:
    """An attribute value of a shape this reader does not take (kvlist, bytes, a malformed AnyValue): a token
    count holding one is refused with the span, not read as zero."""

    def __repr__(self) -> str:
        return "an unreadable value"


UNREADABLE = _Unreadable()


@dataclass
class SpanIn:
    """One span, whichever the encoding: where it was in the export, its ids, times, attributes and status."""

    where: str
    trace_id: str
    span_id: str
    start_ns: int | None
    end_ns: int | None
    attributes: dict
    resource: dict
    error: bool = False


@dataclass
class OtlpBatch:
    events: list[dict] = field(default_factory=list)
    where: list[str] = field(default_factory=list)  # the span each event came from, for the rejection messages
    spans: int = 0
    skipped: list[str] = field(default_factory=list)  # spans of the wrong shape: "spans[3]: attributes …"


# --- bodies ------------------------------------------------------------------------------------------------

def inflate(raw: bytes, encoding: str, limit: int) -> bytes:
    """The body without its Content-Encoding (gzip or deflate), refusing to inflate past `limit` bytes."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "deflate", "x-gzip"):
        raise OtlpShapeError(f"Content-Encoding {encoding!r} is not supported: send gzip or no encoding")
    decompressor = zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip framing, told by the header
    try:
        out = decompressor.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise OtlpShapeError(f"the body is not valid {encoding}: {exc}")
    if len(out) > limit or decompressor.unconsumed_tail:
        raise OtlpTooLarge(f"the body inflates to more than {limit:,} bytes: export smaller batches")
    return out


def spans_from_protobuf(raw: bytes) -> tuple[list[SpanIn], list[str]]:
    """Spans of a protobuf ExportTraceServiceRequest (opentelemetry-proto)."""
    from google.protobuf.message import DecodeError  # why: protobuf (~35 ms) only for OTLP protobuf bodies
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # why: protobuf, as above
        ExportTraceServiceRequest,
    )

    try:
        request = ExportTraceServiceRequest.FromString(raw)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise OtlpShapeError(f"the body is not a protobuf ExportTraceServiceRequest: {exc}")
    spans: list[SpanIn] = []
    for r, resource_spans in enumerate(request.resource_spans):
        resource = {kv.key: _proto_value(kv.value) for kv in resource_spans.resource.attributes}
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            for i, span in enumerate(scope_spans.spans):
                spans.append(SpanIn(
                    where=f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]", trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(), start_ns=span.start_time_unix_nano or None,
                    end_ns=span.end_time_unix_nano or None,
                    attributes={kv.key: _proto_value(kv.value) for kv in span.attributes}, resource=resource,
                    error=span.status.code == 2))
    return spans, []


def _proto_value(value, depth: int = 0):
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_proto_value(v, depth + 1) for v in value.array_value.values] if depth < MAX_ATTRIBUTE_DEPTH else None
    if kind in (None, "kvlist_value", "bytes_value"):
        return UNREADABLE
    return getattr(value, kind)


def spans_from_json(payload) -> tuple[list[SpanIn], list[str]]:
    """Spans of an OTLP JSON ExportTraceServiceRequest, and the reasons spans of the wrong shape were skipped.
    The containers (resourceSpans, scopeSpans, spans, resource attributes) must have their shape: OtlpShapeError."""
    if not isinstance(payload, dict) or not isinstance(payload.get("resourceSpans"), list):
        raise OtlpShapeError("the body must be an OTLP ExportTraceServiceRequest with a resourceSpans list")
    spans: list[SpanIn] = []
    skipped: list[str] = []
    for r, resource_spans in enumerate(payload["resourceSpans"]):
        where = f"resourceSpans[{r}]"
        if not isinstance(resource_spans, dict):
            raise OtlpShapeError(f"{where} must be an object, not {_kind(resource_spans)}")
        resource_obj = resource_spans.get("resource") or {}
        if not isinstance(resource_obj, dict):
            raise OtlpShapeError(f"{where}.resource must be an object, not {_kind(resource_obj)}")
        resource, problem = _json_attributes(resource_obj.get("attributes"))
        if problem:
            raise OtlpShapeError(f"{where}.resource.{problem}")
        scopes = resource_spans.get("scopeSpans", resource_spans.get("instrumentationLibrarySpans")) or []
        if not isinstance(scopes, list):
            raise OtlpShapeError(f"{where}.scopeSpans must be a list, not {_kind(scopes)}")
        for s, scope_spans in enumerate(scopes):
            if not isinstance(scope_spans, dict):
                raise OtlpShapeError(f"{where}.scopeSpans[{s}] must be an object, not {_kind(scope_spans)}")
            items = scope_spans.get("spans") or []
            if not isinstance(items, list):
                raise OtlpShapeError(f"{where}.scopeSpans[{s}].spans must be a list, not {_kind(items)}")
            for i, span in enumerate(items):
                at = f"{where}.scopeSpans[{s}].spans[{i}]"
                parsed, problem = _json_span(span, at, resource)
                if problem:
                    skipped.append(f"{at}: {problem}")
                else:
                    spans.append(parsed)
    return spans, skipped


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _json_span(span, where: str, resource: dict) -> tuple[SpanIn | None, str | None]:
    if not isinstance(span, dict):
        return None, f"a span must be an object, not {_kind(span)}"
    attrs, problem = _json_attributes(span.get("attributes"))
    if problem:
        return None, problem
    status = span.get("status") or {}
    if not isinstance(status, dict):
        return None, f"status must be an object, not {_kind(status)}"
    ids = []
    for name in ("traceId", "spanId"):
        value = span.get(name) or ""
        if not isinstance(value, str):
            return None, f"{name} must be a hex string, not {_kind(value)}"
        ids.append(value)
    times = []
    for name in ("startTimeUnixNano", "endTimeUnixNano"):
        value = span.get(name)
        number = _whole(value)
        if value not in (None, "", 0, "0") and (number is None or number < 0):
            return None, f"{name} must be a whole number of nanoseconds, not {value!r}"[:300]
        times.append(number or None)
    return SpanIn(where=where, trace_id=ids[0], span_id=ids[1], start_ns=times[0], end_ns=times[1],
                  attributes=attrs, resource=resource, error=status.get("code") in (2, "STATUS_CODE_ERROR")), None


def _json_attributes(items) -> tuple[dict, str | None]:
    if items is None:
        return {}, None
    if not isinstance(items, list):
        return {}, f"attributes must be a list of key/value objects, not {_kind(items)}"
    out = {}
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            return {}, f"attributes[{n}] must be an object with a string key"
        out[item["key"]] = _json_value(item.get("value"))
    return out, None


def _json_value(v, depth: int = 0):
    """An OTLP AnyValue as a Python value; UNREADABLE for a shape this reader does not take."""
    if not isinstance(v, dict):
        return UNREADABLE
    if "stringValue" in v:
        return v["stringValue"] if isinstance(v["stringValue"], str) else UNREADABLE
    if "intValue" in v:
        number = _whole(v["intValue"])
        return UNREADABLE if number is None else number
    if "doubleValue" in v:
        value = v["doubleValue"]
        return value if isinstance(value, int | float) and not isinstance(value, bool) else UNREADABLE
    if "boolValue" in v:
        return v["boolValue"] if isinstance(v["boolValue"], bool) else UNREADABLE
    if "arrayValue" in v:
        array = v["arrayValue"]
        values = array.get("values") if isinstance(array, dict) else None
        if not isinstance(values, list) or depth >= MAX_ATTRIBUTE_DEPTH:
            return UNREADABLE
        return [_json_value(x, depth + 1) for x in values]
    return UNREADABLE


def _whole(value) -> int | None:
    """An integer from an int, an integral finite float or a decimal string (OTLP JSON's int64); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str) and value.strip().lstrip("-").isascii() and value.strip().lstrip("-").isdigit():
        return int(value) if len(value) <= 30 else None
    return None


# --- spans → events ------------------------------------------------------------------------------------------

def _first(attrs: dict, names) -> object:
    for name in names:
        value = attrs.get(name)
        if value not in (None, ""):
            return value
    return None


def _text(value) -> str | None:
    """Attribute values as the ledger's text; a list, None or an unreadable value is not text."""
    if value is None or value is UNREADABLE or isinstance(value, list):
        return None
    return str(value)


def span_to_event(span: SpanIn) -> dict | None:
    """One usage event (the batch API's shape) for a GenAI span, None for any other span. Values of the wrong
    type are passed on as they are, so the ingest rejects the span with the field's reason."""
    attrs = span.attributes
    if not any(k.startswith("gen_ai.") for k in attrs) or attrs.get(ATTR_RECORDED) is True:
        return None
    merged = {**span.resource, **attrs}
    event: dict = {"request_id": f"otlp-{span.trace_id}-{span.span_id}"[:100] if span.span_id else None}
    if span.start_ns:
        try:
            event["occurred_at"] = datetime.fromtimestamp(span.start_ns / 1e9, tz=UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            event["occurred_at"] = str(span.start_ns)  # refused by the ingest as out of range
        if span.end_ns and span.end_ns >= span.start_ns:
            event["latency_ms"] = min(int((span.end_ns - span.start_ns) / 1e6), 2_147_483_647)
    # The requested model groups the dashboards and finds the catalog price; dated snapshots in
    # gen_ai.response.model ("gpt-4o-mini-2024-07-18") would split one model into many unpriced rows.
    model = attrs.get("gen_ai.request.model") or attrs.get("gen_ai.response.model")
    if model is not None:
        event["model"] = _text(model)
    provider = _text(attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system"))
    if provider:
        event["provider"] = provider[:50]
    operation = _text(attrs.get("gen_ai.operation.name")) or "chat"
    event["operation"] = Operation.EMBEDDING if operation in EMBEDDING_OPERATIONS else Operation.CHAT
    tokens = {
        "input_tokens": _first(attrs, ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")),
        "output_tokens": _first(attrs, ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")),
        "cached_input_tokens": _first(attrs, ("gen_ai.usage.cache_read.input_tokens",
                                              "gen_ai.usage.cache_read_input_tokens",
                                              "gen_ai.usage.input_tokens.cached")),
        "reasoning_tokens": _first(attrs, ("gen_ai.usage.reasoning.output_tokens",
                                           "gen_ai.usage.reasoning_tokens")),
    }
    for name, value in tokens.items():
        if value is not None:
            whole = _whole(value)
            event[name] = whole if whole is not None else repr(value)[:50]  # the ingest names the bad value
    for key, names in (("team", ATTR_TEAM), ("feature", ATTR_FEATURE), ("tenant", ATTR_TENANT),
                       ("prompt_name", ATTR_PROMPT)):
        value = _text(_first(merged, names))
        if value is not None:
            event[key] = value
    version = _whole(_first(merged, ATTR_PROMPT_VERSION))
    if version is not None:
        event["prompt_version"] = version
    event["source"] = _text(_first(merged, ATTR_SOURCE)) or Source.GATEWAY
    if span.error or attrs.get("error.type"):
        event["status"] = CallStatus.ERROR
        event["error_type"] = (_text(attrs.get("error.type")) or "error")[:80]
    return event


def batch_from_spans(spans: list[SpanIn], skipped: list[str]) -> OtlpBatch:
    batch = OtlpBatch(spans=len(spans) + len(skipped), skipped=skipped)
    for span in spans:
        event = span_to_event(span)
        if event is not None:
            batch.events.append(event)
            batch.where.append(span.where)
    return batch


def traces_to_events(payload) -> OtlpBatch:
    """The usage events of an OTLP JSON export (a parsed ExportTraceServiceRequest); OtlpShapeError if the
    body is not one."""
    return batch_from_spans(*spans_from_json(payload))


def protobuf_to_events(raw: bytes) -> OtlpBatch:
    return batch_from_spans(*spans_from_protobuf(raw))


def protobuf_response(rejected: int, message: str) -> bytes:
    """ExportTraceServiceResponse with the spec's partial_success, for a protobuf request."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # why: protobuf, as above
        ExportTracePartialSuccess,
        ExportTraceServiceResponse,
    )

    partial = ExportTracePartialSuccess(rejected_spans=rejected, error_message=message) if rejected else None
    return ExportTraceServiceResponse(partial_success=partial).SerializeToString()
