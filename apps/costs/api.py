"""REST API of the costs app (mounted at the API root: /api/v1/usage, /api/v1/otlp/v1/traces, …).

Ingestion answers 200 with what was accepted, duplicated and rejected (index + reasons) whenever the
envelope is readable; a bad envelope is a 400/413/415 with a message, never a 500.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import HttpResponse
from ninja import Field, Router, Schema
from ninja.responses import Status
from pydantic import ConfigDict

from apps.accounts.models import ApiToken, Team
from apps.accounts.permissions import Action, is_authenticated, team_actions
from apps.core.api_errors import ApiProblem, errors
from apps.core.safe_input import InputRejected, loads_json
from apps.costs import conf, selectors
from apps.costs.ingest import is_id, usage_events_ingest
from apps.costs.otlp import (
    PROTOBUF_TYPES,
    OtlpShapeError,
    OtlpTooLarge,
    inflate,
    protobuf_response,
    protobuf_to_events,
    traces_to_events,
)
from apps.costs.services import usage_outcomes_set

router = Router(tags=["costs"])

EVENT_SCHEMA = {
    "type": "object",
    "required": ["request_id", "model"],
    "properties": {
        "request_id": {"type": "string", "maxLength": 100, "description": "Idempotency key: resending is a no-op"},
        "occurred_at": {"type": "string", "format": "date-time", "description": "Default: now. Alias: timestamp"},
        "team": {"type": ["string", "integer"], "description": "Team slug or id; default: the token's team"},
        "feature": {"type": "string"}, "tenant": {"type": "string"},
        "provider": {"type": "string"}, "model": {"type": "string"},
        "operation": {"enum": ["chat", "embedding"]},
        "prompt_name": {"type": "string"}, "prompt_version": {"type": "integer"},
        "source": {"enum": ["playground", "eval", "rag", "api", "gateway"], "description": "Default: api"},
        "input_tokens": {"type": "integer", "description": "Including cached input tokens"},
        "output_tokens": {"type": "integer", "description": "Including reasoning tokens"},
        "cached_input_tokens": {"type": "integer"}, "reasoning_tokens": {"type": "integer"},
        "latency_ms": {"type": "integer"}, "status": {"enum": ["ok", "error"]}, "error_type": {"type": "string"},
        "outcome": {"enum": ["success", "failure", "unknown"]},
        "use_case_id": {"type": "integer"}, "collection_id": {"type": "integer"},
    },
}


def _batch_body(key: str, items: dict, *, required: bool = False) -> dict:
    """The OpenAPI request body of a batch endpoint: a JSON object whose `key` holds up to 1,000 `items`."""
    schema: dict = {"type": "object"}
    if required:
        schema["required"] = [key]
    schema["properties"] = {key: {"type": "array", "maxItems": 1000, "items": items}}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _json_body(request, limit_hint: str):
    if request.content_type and "json" not in request.content_type:
        raise ApiProblem(415, f"Send JSON (Content-Type: application/json), not {request.content_type}.")
    try:
        raw = request.body
    except RequestDataTooBig:
        raise ApiProblem(413, f"The body is too large: {limit_hint}.")
    # each item's text is checked by the ingest, so one bad item does not cost the batch (InputRejected: 400)
    return loads_json(raw or b"null", check_text=False)


def _require_ingest(actor) -> None:
    if not is_authenticated(actor):
        raise PermissionDenied("Authentication required.")
    if isinstance(actor, ApiToken):
        actions = team_actions(actor, actor.team_id)
        if Action.INGEST not in actions and Action.CHANGE not in actions:
            raise PermissionDenied("This token may not send usage: it needs the 'ingest' (or 'write') scope.")


class RejectedOut(Schema):
    index: int
    request_id: str | None = None
    errors: list[str]


class IngestOut(Schema):
    received: int
    accepted: int
    duplicates: int
    unpriced: int
    rejected: list[RejectedOut]


@router.post("/usage", response={200: IngestOut, **errors(400, 403, 413, 415)},
             summary="Send a batch of up to 1,000 usage events (idempotent by request_id)",
             openapi_extra=_batch_body("events", EVENT_SCHEMA, required=True))
def usage_ingest(request):
    """Each bad event is rejected with its index and reasons; the good ones are kept. Costs are computed here
    from the price valid at each event's time; an event for a model with no price is kept as unpriced."""
    actor = request.auth
    _require_ingest(actor)
    limit = conf.ingest_max_events()
    body = _json_body(request, f"send at most {limit} events per request")
    events = body.get("events") if isinstance(body, dict) else body if isinstance(body, list) else None
    if not isinstance(events, list):
        raise ApiProblem(400, 'Send {"events": [ ... ]}: a JSON object with a list of events.')
    if len(events) > limit:
        raise ApiProblem(400, f"{len(events)} events in one batch; send at most {limit} per request.")
    return Status(200, usage_events_ingest(events=events, actor=actor, via="usage API").as_dict())


class OtlpPartialSuccess(Schema):
    rejectedSpans: int = 0  # noqa: N815 - the OTLP wire name
    errorMessage: str = ""  # noqa: N815


class OtlpOut(Schema):
    partialSuccess: OtlpPartialSuccess  # noqa: N815
    spans: int
    genai_spans: int
    accepted: int
    duplicates: int
    rejected: list[RejectedOut]


@router.post("/otlp/v1/traces", response={200: OtlpOut, **errors(400, 403, 413, 415)},
             summary="OTLP/HTTP traces (protobuf or JSON, gzip allowed): GenAI spans become usage events",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/x-protobuf": {"schema": {"type": "string", "format": "binary",
                                                       "description": "ExportTraceServiceRequest"}},
                 "application/json": {"schema": {"type": "object", "required": ["resourceSpans"], "properties": {
                     "resourceSpans": {"type": "array", "items": {"type": "object"}}}}}}},
                 "responses": {200: {"description": "OK", "content": {"application/x-protobuf": {
                     "schema": {"type": "string", "format": "binary",
                                "description": "ExportTraceServiceResponse (to a protobuf export)"}}}}}})
def otlp_traces(request):
    """Spans with OpenTelemetry GenAI attributes (gen_ai.*) become usage events; other spans are ignored.
    Team, feature and tenant come from resource attributes (portal.team / portal.feature / portal.tenant).
    A protobuf export gets a protobuf ExportTraceServiceResponse; spans that were refused or skipped are
    counted in its partialSuccess (rejectedSpans, errorMessage)."""
    actor = request.auth
    _require_ingest(actor)
    content_type = (request.content_type or "application/json").lower()
    protobuf = content_type in PROTOBUF_TYPES
    if not protobuf and "json" not in content_type:
        raise ApiProblem(415, f"Send OTLP/HTTP protobuf (application/x-protobuf) or JSON "
                              f"(application/json), not {request.content_type}.")
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        raw = inflate(request.body, request.headers.get("Content-Encoding", ""), limit)
        if protobuf:
            batch = protobuf_to_events(raw)
        else:
            batch = traces_to_events(loads_json(raw or b"null", check_text=False))
    except RequestDataTooBig:
        raise ApiProblem(413, f"The body is too large (at most {limit:,} bytes): export smaller batches.")
    except OtlpTooLarge as exc:
        raise ApiProblem(413, f"The body is too large: {exc}.")
    except InputRejected as exc:
        raise ApiProblem(400, exc.message)
    except OtlpShapeError as exc:
        raise ApiProblem(400, f"Not an OTLP trace export: {exc}.")
    most = conf.ingest_max_events() * 5
    if len(batch.events) > most:
        raise ApiProblem(400, f"{len(batch.events)} GenAI spans in one export; send at most {most}.")
    result = usage_events_ingest(events=batch.events, actor=actor, source_default="gateway", via="OTLP")
    reasons = [f"{batch.where[r.index]}: {', '.join(r.errors)}" for r in result.rejected] + batch.skipped
    rejected_spans = len(reasons)
    message = "; ".join(reasons[:5]) + (f"; … {rejected_spans - 5} more" if rejected_spans > 5 else "")
    if protobuf:
        return HttpResponse(protobuf_response(rejected_spans, message), content_type="application/x-protobuf")
    return Status(200, {"partialSuccess": {"rejectedSpans": rejected_spans, "errorMessage": message},
                        "spans": batch.spans, "genai_spans": len(batch.events), "accepted": result.accepted,
                        "duplicates": result.duplicates, "rejected": [r.__dict__ for r in result.rejected]})


class OutcomesOut(Schema):
    received: int
    updated: int
    unchanged: int
    rejected: list[RejectedOut]


@router.post("/usage/outcomes", response={200: OutcomesOut, **errors(400, 403, 413, 415)},
             summary="Feedback: mark usage events success / failure by request_id",
             openapi_extra=_batch_body("outcomes", {
                 "type": "object", "required": ["request_id", "outcome"],
                 "properties": {"request_id": {"type": "string"},
                                "outcome": {"enum": ["success", "failure", "unknown"]}}}))
def usage_outcomes(request):
    actor = request.auth
    _require_ingest(actor)
    body = _json_body(request, "send at most 1000 outcomes per request")
    items = body.get("outcomes") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ApiProblem(400, 'Send {"outcomes": [{"request_id": ..., "outcome": "success"}]}.')
    if len(items) > conf.ingest_max_events():
        raise ApiProblem(400, f"Send at most {conf.ingest_max_events()} outcomes per request.")
    return Status(200, usage_outcomes_set(outcomes=items, actor=actor))


class SummaryTotals(Schema):
    events: int
    errors: int
    refused: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    cost: Decimal
    unpriced: int
    cache_savings: Decimal
    successes: int
    failures: int
    cache_hits: int = Field(..., description="Answers the response cache gave (cost $0 on the ledger)")
    cache_hit_savings: Decimal = Field(..., description="What those answers would have cost: the saving")


class SummaryGroup(SummaryTotals):
    key: str | int | None


class SummaryOut(Schema):
    from_: datetime = Field(..., alias="from")
    to: datetime
    group_by: str
    granularity: str
    groups: list[SummaryGroup]
    totals: SummaryTotals

    model_config = ConfigDict(populate_by_name=True)


def parse_moment(value: str, name: str) -> datetime:
    value = value.strip()
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"'{name}' must be a date (2025-03-01) or an ISO time, not {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)
        if not 1900 <= parsed.year <= 9000:
            raise OverflowError
    except OverflowError:
        raise ValueError(f"'{name}' is out of range: {value!r}")
    return parsed


@router.get("/usage/summary", response={200: SummaryOut, **errors(403, 422)},
            summary="Totals of events, tokens, cost and cache savings per team, feature, tenant, model, source, "
                    "prompt or use case",
            by_alias=True)
def usage_summary(request, group_by: str = "team", from_: str = "", to: str = "", team: str = "",
                  feature: str = "", tenant: str = "", model: str = "", source: str = ""):
    """Read from the rollups: `from` inclusive, `to` exclusive (dates are whole UTC days; default: the last 30
    days). Times that are not whole days use hourly rollups, kept for the last week. `group_by=use_case`: one
    group per use case id (`key`; "" for usage with none), e.g. the response cache's saving per use case
    (`cache_hit_savings`)."""
    actor = request.auth
    if not selectors.may_read_usage(actor):
        raise ApiProblem(403, "This token may not read usage: it needs the 'read' (or 'write') scope.")
    from_ = request.GET.get("from", from_)
    problems = []
    if group_by not in selectors.GROUPS:
        problems.append({"field": "group_by", "message": f"group_by must be one of {', '.join(selectors.GROUPS)}."})
    filters = selectors.default_filters()
    start, end = filters.start, filters.end
    try:
        if from_:
            start = parse_moment(from_, "from")
        if to:
            end = parse_moment(to, "to")
    except ValueError as exc:
        problems.append({"field": "from/to", "message": str(exc)})
    if not problems and end <= start:
        problems.append({"field": "to", "message": "'to' must be after 'from'."})
    if not problems and end - start > timedelta(days=800):
        problems.append({"field": "from", "message": "Ask for at most 800 days at a time."})
    team_ids: tuple[int, ...] = ()
    if team:
        found = Team.objects.filter(slug=team).values_list("pk", flat=True).first()
        if found is None and is_id(team):
            found = int(team)
        if found is None:
            problems.append({"field": "team", "message": f"There is no team {team!r}."})
        else:
            team_ids = (found,)
    filters = selectors.UsageFilters(start=start, end=end, team_ids=team_ids, feature=feature, tenant=tenant,
                                     model=model, source=source)
    whole_days = start == selectors.day_start(start) and end == selectors.day_start(end)
    whole_hours = start.minute == start.second == start.microsecond == 0 == end.minute + end.second + end.microsecond
    if not problems and not whole_days and not (whole_hours and start >= selectors.hourly_horizon()):
        problems.append({"field": "from/to", "message": "Use whole days, or whole hours within the last 7 days "
                                                      "(only those are kept hourly)."})
    if problems:
        raise ApiProblem(422, "Invalid input.", problems)
    data = selectors.usage_summary(actor=actor, filters=filters, group_by=group_by)
    for g in data["groups"]:
        g["key"] = g["key"] if g["key"] is not None else ""
    return Status(200, data)
