"""The call path's response cache (apps/llm/cache.py, ADRs 0074 and 0099) for the portal's own calls: a call that
opts in is answered once upstream, the repeat is one ledger row marked as a cache hit at no cost with what it
saved; streams replay; nothing crosses teams; a call without the opt-in, or sampled, never reads it.
(The gateway's use of the same cache: tests/gateway/test_cache.py.)"""

from __future__ import annotations

import pytest

from apps.core import redis as portal_redis
from apps.costs.models import UsageEvent
from apps.costs.services import UsageContext
from apps.llm import calls
from apps.llm.cache import CachePolicy
from tests.factories import PriceFactory
from tests.support.standin import standin_model, standin_provider

QUESTION = [{"role": "user", "content": "How long do refunds take? Tell me in a few words please."}]


@pytest.fixture
def upstream(llm_standin, db):
    """The stand-in's priced chat model (a hit then has a saving) and no cache entries left from other tests."""
    standin_model(standin_provider(llm_standin), "standin-chat")
    PriceFactory(model_name="standin-chat", input_per_mtok="2.50", output_per_mtok="10.00")
    client = portal_redis.client()
    for name in client.scan_iter(portal_redis.key("gateway", "cache", "*")):
        client.delete(name)
    return llm_standin.standin


def _context(team, **fields) -> UsageContext:
    return UsageContext(source="rag", team_id=team.pk, feature="rag.answer", **fields)


def test_a_portal_call_that_opts_in_is_answered_from_the_cache_and_recorded_as_a_saving(upstream, team):
    first = calls.chat(model="standin-chat", messages=QUESTION, context=_context(team), temperature=0,
                       cache=CachePolicy())
    again = calls.chat(model="standin-chat", messages=QUESTION, context=_context(team), temperature=0.0,
                       cache=CachePolicy())

    assert upstream.stats()["calls"] == 1
    assert (first.cache_hit, again.cache_hit) == (False, True)
    assert again.text == first.text and again.usage == first.usage and again.cost == 0
    paid = UsageEvent.objects.get(pk=first.usage_event_id)
    hit = UsageEvent.objects.get(pk=again.usage_event_id)
    assert not paid.cache_hit and paid.cost > 0 and paid.cache_saving is None
    assert hit.cache_hit and hit.cost == 0 and hit.cache_saving == paid.cost
    assert (hit.source, hit.team_id, hit.input_tokens, hit.output_tokens, hit.status) == ("rag", team.pk, 0, 0, "ok")


def test_a_stream_is_replayed_from_the_entry_a_plain_call_made(upstream, team):
    plain = calls.chat(model="standin-chat", messages=QUESTION, context=_context(team), temperature=0,
                       cache=CachePolicy())
    stream = calls.chat_stream(model="standin-chat", messages=QUESTION, context=_context(team), temperature=0,
                               cache=CachePolicy())

    assert "".join(stream) == plain.text and stream.result.cache_hit
    assert upstream.stats()["calls"] == 1
    assert UsageEvent.objects.get(pk=stream.result.usage_event_id).cache_hit


def test_without_the_opt_in_with_sampling_or_for_another_team_the_call_goes_upstream(upstream, team, other_team):
    calls.chat(model="standin-chat", messages=QUESTION, context=_context(team), temperature=0, cache=CachePolicy())
    calls.chat(model="standin-chat", messages=QUESTION, context=_context(team), temperature=0)
    calls.chat(model="standin-chat", messages=QUESTION, context=_context(team), temperature=0.7, cache=CachePolicy())
    other = calls.chat(model="standin-chat", messages=QUESTION, context=_context(other_team), temperature=0,
                       cache=CachePolicy())
    other_prompt = calls.chat(model="standin-chat", messages=QUESTION, temperature=0, cache=CachePolicy(),
                              context=_context(team, prompt_name="support/refunds", prompt_version=2))

    assert upstream.stats()["calls"] == 5
    assert not other.cache_hit and not other_prompt.cache_hit
    assert not UsageEvent.objects.filter(cache_hit=True).exists()


def test_a_prompt_versions_config_says_whether_and_how_long():
    assert CachePolicy.from_config(None) is None and CachePolicy.from_config(False) is None
    assert CachePolicy.from_config(True) == CachePolicy()
    assert CachePolicy.from_config({"ttl_seconds": 60, "sampled": True}) == CachePolicy(ttl_seconds=60, sampled=True)
