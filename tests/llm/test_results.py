"""CallRecord's trip as JSON (the gateway's Redis stream, its recorder): every field there and back."""

import dataclasses
import json
from decimal import Decimal

from apps.costs.pricing import TokenCounts
from apps.costs.services import UsageContext
from apps.llm.results import CallRecord


def full_record() -> CallRecord:
    """A record with every optional field set to something other than its default."""
    context = UsageContext(source="gateway", team_id=3, user_id=4, api_token_id=5, feature="bot", use_case_id=6,
                           tenant="acme", prompt_name="support/qa", prompt_version=2, collection_id=7,
                           experiment_id=8, experiment_arm="b", experiment_unit="u1", switch_id=9, request_id="r1")
    return CallRecord(request_id="r1", context=context, provider="openai", model="gpt", price_name="gpt-x",
                      operation="chat", tokens=TokenCounts(10, 5, 2, 1), status="ok", error_type="E",
                      latency_ms=30, upstream_ms=20, ttft_ms=7, deployment="d1", alias="chat", fallbacks=1,
                      cache_hit=True, cache_saving=Decimal("0.0012"), cache_tokens=TokenCounts(3, 4, 0, 0),
                      estimated=True, guardrail_actions=({"stage": "input", "action": "redact"},),
                      groundedness=0.75)


def test_to_dict_holds_every_field_of_the_record_and_its_parts_as_asdict_would():
    record = full_record()
    expected = dataclasses.asdict(record) | {"occurred_at": record.occurred_at.isoformat()}

    assert record.to_dict() == expected


def test_a_record_with_every_field_set_comes_back_equal_from_json():
    record = full_record()

    again = CallRecord.from_dict(json.loads(json.dumps(record.to_dict(), default=str)))

    assert again == record


def test_to_dict_is_a_copy_changing_it_leaves_the_record_alone():
    record = full_record()

    data = record.to_dict()
    data["context"]["tenant"] = "other"
    data["tokens"]["input_tokens"] = 0

    assert (record.context.tenant, record.tokens.input_tokens) == ("acme", 10)
