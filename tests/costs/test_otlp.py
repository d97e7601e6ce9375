"""POST /api/v1/otlp/v1/traces: GenAI spans from an OTLP/HTTP JSON export become priced usage events."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from apps.costs.models import UsageEvent
from apps.costs.otlp import traces_to_events
from tests.costs.conftest import money

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("march_2025_is_recent")]

URL = "/api/v1/otlp/v1/traces"
PAYLOAD = json.loads((Path(__file__).parent / "data" / "otlp_openai_v2.json").read_text())


def test_genai_spans_are_read_with_current_and_deprecated_attribute_names():
    batch = traces_to_events(PAYLOAD)

    assert (batch.spans, len(batch.events), batch.skipped) == (5, 4, [])  # the plain HTTP span is skipped
    chat, legacy, failed, embedding = batch.events
    assert chat["request_id"] == "otlp-5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174"
    assert (chat["model"], chat["provider"], chat["operation"]) == ("gpt-4o-mini", "openai", "chat")
    assert (chat["input_tokens"], chat["output_tokens"], chat["cached_input_tokens"]) == (1200, 14, 1024)
    assert (chat["team"], chat["feature"], chat["tenant"], chat["latency_ms"]) == ("support-ai", "answer", "acme", 1250)
    assert chat["occurred_at"].startswith("2025-03-10T12:00:00")
    assert (legacy["provider"], legacy["input_tokens"], legacy["output_tokens"]) == ("openai", 500, 100)
    assert (legacy["tenant"], legacy["prompt_name"], legacy["prompt_version"]) == ("globex", "support-answer", 3)
    assert (failed["status"], failed["error_type"]) == ("error", "APITimeoutError")
    assert embedding["operation"] == "embedding"


def test_an_export_lands_in_the_ledger_priced_and_idempotent(api, ingest_token, prices, team):
    from apps.costs.services import price_set

    price_set(model_name="text-embedding-3-small", input_per_mtok="0.02", output_per_mtok="0",
              valid_from=datetime(2025, 1, 1, tzinfo=UTC))
    _, secret = ingest_token

    body = api(secret).post(URL, PAYLOAD).json()
    again = api(secret).post(URL, PAYLOAD).json()

    assert body["partialSuccess"] == {"rejectedSpans": 0, "errorMessage": ""}
    assert (body["spans"], body["genai_spans"], body["accepted"]) == (5, 4, 4)
    assert (again["accepted"], again["duplicates"]) == (0, 4)
    chat = UsageEvent.objects.get(request_id__endswith="b174")
    assert chat.cost == money((176 * Decimal("0.15") + 1024 * Decimal("0.075") + 14 * Decimal("0.60")) / 10**6)
    assert (chat.team_id, chat.source, chat.occurred_at) == (team.pk, "gateway",
                                                             datetime(2025, 3, 10, 12, 0, tzinfo=UTC))
    failed = UsageEvent.objects.get(request_id__endswith="b176")
    assert (failed.status, failed.cost) == ("error", Decimal(0))


def test_a_span_for_another_team_is_rejected_and_reported_as_partial_success(api, ingest_token, prices,
                                                                             other_team):
    payload = json.loads(json.dumps(PAYLOAD))
    payload["resourceSpans"][0]["resource"]["attributes"][4]["value"]["stringValue"] = "search"
    _, secret = ingest_token

    body = api(secret).post(URL, payload).json()

    assert body["accepted"] == 0 and body["partialSuccess"]["rejectedSpans"] == 4
    assert "may not send usage for team 'search'" in body["partialSuccess"]["errorMessage"]


def test_garbage_and_other_encodings_get_clear_answers(api, ingest_token):
    _, secret = ingest_token

    garbage = api(secret).post(URL, {"resourceSpans": "nope"})
    broken_protobuf = api(secret).post(URL, b"\xff\xff\xff", content_type="application/x-protobuf")
    text = api(secret).post(URL, "spans", content_type="text/plain")

    assert garbage.status_code == 400 and "resourceSpans" in garbage.json()["detail"]
    assert broken_protobuf.status_code == 400 and "protobuf" in broken_protobuf.json()["detail"]
    assert text.status_code == 415 and "x-protobuf" in text.json()["detail"]
