"""OTLP/HTTP JSON traces → usage events, from the OpenTelemetry GenAI semantic conventions.

A span is a model call when it carries gen_ai.* usage or model attributes; other spans (HTTP, DB…) in the
same export are skipped, not rejected. Attribution (team, feature, tenant) comes from resource attributes,
overridable per span. Both the current names (gen_ai.provider.name, gen_ai.usage.input_tokens …) and the
deprecated ones (gen_ai.system, gen_ai.usage.prompt_tokens / completion_tokens) are read.

OTLP JSON encodes 64-bit integers as strings and ids as hex; both are handled.
"""

from __future__ import annotations

from datetime import UTC, datetime

from apps.costs.models import CallStatus, Operation, Source

ATTR_TEAM = ("portal.team", "team", "team.name")
ATTR_FEATURE = ("portal.feature", "feature", "app.feature")
ATTR_TENANT = ("portal.tenant", "tenant", "tenant.id", "enduser.tenant")
ATTR_PROMPT = ("portal.prompt.name", "gen_ai.prompt.name", "prompt.name")
ATTR_PROMPT_VERSION = ("portal.prompt.version", "gen_ai.prompt.version", "prompt.version")
ATTR_SOURCE = ("portal.source",)
EMBEDDING_OPERATIONS = {"embeddings", "embedding"}


def _value(v: dict):
    """An OTLP AnyValue as a Python value."""
    if not isinstance(v, dict):
        return None
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            return None
    if "doubleValue" in v:
        return v["doubleValue"]
    if "boolValue" in v:
        return v["boolValue"]
    if "arrayValue" in v:
        return [_value(x) for x in (v["arrayValue"] or {}).get("values", [])]
    return None


def attributes(items) -> dict:
    out = {}
    for item in items or ():
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = _value(item.get("value") or {})
    return out


def _first(attrs: dict, names) -> object:
    for name in names:
        value = attrs.get(name)
        if value not in (None, ""):
            return value
    return None


def _int(value) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _is_genai(attrs: dict) -> bool:
    return any(k.startswith("gen_ai.") for k in attrs)


def span_to_event(span: dict, resource: dict) -> dict | None:
    """One usage event (the batch API's shape) for a GenAI span, None for any other span."""
    attrs = attributes(span.get("attributes"))
    if not _is_genai(attrs):
        return None
    merged = {**resource, **attrs}
    trace_id = str(span.get("traceId") or "")
    span_id = str(span.get("spanId") or "")
    event: dict = {"request_id": f"otlp-{trace_id}-{span_id}"[:100] if span_id else None}
    start_ns = _int(span.get("startTimeUnixNano"))
    end_ns = _int(span.get("endTimeUnixNano"))
    if start_ns:
        event["occurred_at"] = datetime.fromtimestamp(start_ns / 1e9, tz=UTC).isoformat()
        if end_ns and end_ns >= start_ns:
            event["latency_ms"] = int((end_ns - start_ns) / 1e6)
    # The requested model groups the dashboards and finds the catalog price; dated snapshots in
    # gen_ai.response.model ("gpt-4o-mini-2024-07-18") would split one model into many unpriced rows.
    model = attrs.get("gen_ai.request.model") or attrs.get("gen_ai.response.model")
    if model is not None:
        event["model"] = str(model)
    provider = attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system")
    if provider:
        event["provider"] = str(provider)[:50]
    operation = str(attrs.get("gen_ai.operation.name") or "chat")
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
            event[name] = _int(value) if _int(value) is not None else value
    for key, names in (("team", ATTR_TEAM), ("feature", ATTR_FEATURE), ("tenant", ATTR_TENANT),
                       ("prompt_name", ATTR_PROMPT)):
        value = _first(merged, names)
        if value is not None:
            event[key] = str(value)
    version = _int(_first(merged, ATTR_PROMPT_VERSION))
    if version is not None:
        event["prompt_version"] = version
    event["source"] = str(_first(merged, ATTR_SOURCE) or Source.GATEWAY)
    status = span.get("status") or {}
    code = status.get("code")
    if code in (2, "STATUS_CODE_ERROR") or attrs.get("error.type"):
        event["status"] = CallStatus.ERROR
        event["error_type"] = str(attrs.get("error.type") or "error")[:80]
    return event


def traces_to_events(payload) -> tuple[list[dict], int, list[str]]:
    """(events, spans seen, problems with the envelope) from an ExportTraceServiceRequest in JSON."""
    if not isinstance(payload, dict) or not isinstance(payload.get("resourceSpans"), list):
        return [], 0, ["the body must be an OTLP ExportTraceServiceRequest with a resourceSpans list"]
    events: list[dict] = []
    seen = 0
    for resource_spans in payload["resourceSpans"]:
        if not isinstance(resource_spans, dict):
            continue
        resource = attributes((resource_spans.get("resource") or {}).get("attributes"))
        for scope_spans in resource_spans.get("scopeSpans") or resource_spans.get("instrumentationLibrarySpans") or []:
            for span in (scope_spans or {}).get("spans") or []:
                if not isinstance(span, dict):
                    continue
                seen += 1
                event = span_to_event(span, resource)
                if event is not None:
                    events.append(event)
    return events, seen, []
