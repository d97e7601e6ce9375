"""The gateway's response cache (the call path's, apps/llm/cache.py, opted into by apps/gateway/cache.py; ADRs
0074 and 0099), with the official OpenAI SDK against the stand-in upstream: a repeated request is answered once
upstream, a stream is replayed as a stream, teams never share answers, failures and sampled requests are not
kept, entries expire, and a hit is one ledger row at no provider cost with what it saved."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI

from apps.core import redis as portal_redis
from apps.costs.models import UsageEvent
from apps.gateway.services import gateway_key_create
from apps.gateway.wire import parse_chat
from apps.llm import cache
from apps.llm.models import ModelKind
from tests.factories import PriceFactory
from tests.gateway.test_metrics import scrape
from tests.support.standin import standin_model, standin_provider

QUESTION = [{"role": "user", "content": "How long do refunds take? Tell me in a few words please."}]
EXACT = {"temperature": 0}  # a request is cacheable only when not sampled (temperature unset means 1)


@pytest.fixture
def cached(llm_standin, gateway_url):
    """The stand-in's chat models (priced, so a hit has a saving) and no cache entries left from other tests."""
    provider = standin_provider(llm_standin)
    for name in ("standin-chat", "cut-stream", "fail-503"):
        standin_model(provider, name, remote_name=name)
    standin_model(provider, "standin-embed", remote_name="embed-8", kind=ModelKind.EMBEDDING)
    PriceFactory(model_name="standin-chat", input_per_mtok="2.50", output_per_mtok="10.00")
    client = portal_redis.client()
    for name in client.scan_iter(portal_redis.key("gateway", "cache", "*")):
        client.delete(name)
    return llm_standin.standin


def sdk(url, secret, **headers):
    return OpenAI(base_url=url, api_key=secret, max_retries=0, default_headers=headers or None)


def entries(team_id) -> list[bytes]:
    return list(portal_redis.client().scan_iter(portal_redis.key("gateway", "cache", team_id, "*")))


def test_a_repeated_request_is_answered_from_the_cache_and_recorded_as_a_saving(gateway_url, cached, gateway_key,
                                                                               drain):
    key, secret = gateway_key(cache_enabled=True)
    client = sdk(gateway_url, secret)
    before = scrape(gateway_url)
    first = client.chat.completions.with_raw_response.create(model="standin-chat", messages=QUESTION, **EXACT)
    again = client.chat.completions.with_raw_response.create(model="standin-chat", messages=QUESTION, **EXACT,
                                                            user="someone-else", metadata={"tenant": "acme"})

    assert (first.headers["x-portal-cache"], again.headers["x-portal-cache"]) == ("miss", "hit")
    assert cached.stats()["calls"] == 1  # the upstream answered once
    after = scrape(gateway_url)
    for result in ("miss", "stored", "hit"):
        sample = ("portal_gateway_cache_total", (("endpoint", "/v1/chat/completions"), ("result", result)))
        assert after[sample] - before.get(sample, 0.0) == 1
    answer, replay = first.parse(), again.parse()
    assert replay.choices[0].message.content == answer.choices[0].message.content
    assert replay.usage.total_tokens == answer.usage.total_tokens and replay.id != answer.id
    assert drain() == 2
    paid = UsageEvent.objects.get(request_id=first.headers["x-portal-request-id"])
    hit = UsageEvent.objects.get(request_id=again.headers["x-portal-request-id"])
    assert not paid.cache_hit and paid.cost > 0 and paid.cache_saving is None
    assert hit.cache_hit and hit.cost == 0 and hit.cache_saving == paid.cost
    assert (hit.input_tokens, hit.output_tokens, hit.status, hit.tenant) == (0, 0, "ok", "acme")
    assert (hit.model, hit.gateway_key_id, hit.team_id, hit.upstream_ms) == ("standin-chat", key.pk, key.team_id, None)


def test_a_stream_is_replayed_as_a_stream_with_the_same_text(gateway_url, cached, gateway_key, drain):
    _key, secret = gateway_key(cache_enabled=True)
    client = sdk(gateway_url, secret)

    def text(chunks):
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    streamed = list(client.chat.completions.create(model="standin-chat", messages=QUESTION, stream=True, **EXACT))
    replayed = client.chat.completions.with_raw_response.create(model="standin-chat", messages=QUESTION,
                                                               stream=True, **EXACT)
    replay = list(replayed.parse())
    with_usage = list(client.chat.completions.create(model="standin-chat", messages=QUESTION, stream=True,
                                                     stream_options={"include_usage": True}, **EXACT))
    plain = client.chat.completions.create(model="standin-chat", messages=QUESTION, **EXACT)

    assert cached.stats()["calls"] == 1
    assert replayed.headers["x-portal-cache"] == "hit" and replayed.headers["content-type"].startswith(
        "text/event-stream")
    assert text(replay) == text(streamed) == text(with_usage) == plain.choices[0].message.content
    assert replay[-1].choices[0].finish_reason == "stop" and all(c.usage is None for c in replay)
    assert with_usage[-1].choices == [] and with_usage[-1].usage.completion_tokens > 0
    assert drain() == 4
    assert UsageEvent.objects.filter(cache_hit=True, ttft_ms__isnull=False).count() == 2


def test_two_teams_sending_the_same_request_never_share_an_answer(gateway_url, cached, gateway_key, other_team,
                                                                  drain):
    ours, our_secret = gateway_key(cache_enabled=True)
    theirs = gateway_key_create(team=other_team, name="search-bot", feature="search", cache_enabled=True)
    for secret in (our_secret, theirs.secret, our_secret, theirs.secret):
        sdk(gateway_url, secret).chat.completions.create(model="standin-chat", messages=QUESTION, **EXACT)

    assert cached.stats()["calls"] == 2  # one miss per team, then one hit per team
    assert len(entries(ours.team_id)) == len(entries(other_team.pk)) == 1
    drain()
    hits = dict(UsageEvent.objects.filter(cache_hit=True).values_list("team_id", "gateway_key_id"))
    assert hits == {ours.team_id: ours.pk, other_team.pk: theirs.key.pk}


def test_errors_and_cut_streams_are_never_stored(gateway_url, cached, gateway_key):
    key, secret = gateway_key(cache_enabled=True)
    client = sdk(gateway_url, secret)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="fail-503", messages=QUESTION, **EXACT)
    with pytest.raises(openai.APIError, match="cut off"):
        list(client.chat.completions.create(model="cut-stream", messages=QUESTION, stream=True, **EXACT))

    assert entries(key.team_id) == []
    assert cached.stats()["calls"] == 3  # the failed request was asked upstream again, not answered from a cache


def test_sampled_requests_are_cached_only_when_the_keys_policy_allows(gateway_url, cached, gateway_key):
    _key, exact_only = gateway_key(cache_enabled=True)
    for temperature in (0.7, 0.7, None, None):
        options = {} if temperature is None else {"temperature": temperature}
        sdk(gateway_url, exact_only).chat.completions.create(model="standin-chat", messages=QUESTION, **options)
    assert cached.stats()["calls"] == 4

    _key, sampled_too = gateway_key(cache_enabled=True, cache_sampled=True)
    answers = [sdk(gateway_url, sampled_too).chat.completions.with_raw_response.create(
        model="standin-chat", messages=QUESTION, temperature=0.7) for _ in range(2)]
    assert [a.headers["x-portal-cache"] for a in answers] == ["miss", "hit"]
    assert cached.stats()["calls"] == 5


def test_an_entry_lives_for_the_keys_ttl_and_is_gone_after_it(gateway_url, cached, gateway_key):
    key, secret = gateway_key(cache_enabled=True, cache_ttl_seconds=120)
    client = sdk(gateway_url, secret)
    client.chat.completions.create(model="standin-chat", messages=QUESTION, **EXACT)
    [name] = entries(key.team_id)
    assert 110 <= portal_redis.client().ttl(name) <= 120

    portal_redis.client().expire(name, 0)  # what Redis does when the TTL runs out
    answer = client.chat.completions.with_raw_response.create(model="standin-chat", messages=QUESTION, **EXACT)
    assert answer.headers["x-portal-cache"] == "miss" and cached.stats()["calls"] == 2


def test_a_request_opts_in_or_out_with_the_x_portal_cache_header(gateway_url, cached, gateway_key):
    _key, plain_key = gateway_key()  # the key has no cache: the request asks for it
    asking = sdk(gateway_url, plain_key, **{"X-Portal-Cache": "use"})
    seen = [asking.chat.completions.with_raw_response.create(model="standin-chat", messages=QUESTION, **EXACT)
            .headers["x-portal-cache"] for _ in range(2)]
    assert seen == ["miss", "hit"] and cached.stats()["calls"] == 1
    sdk(gateway_url, plain_key).chat.completions.create(model="standin-chat", messages=QUESTION, **EXACT)
    assert cached.stats()["calls"] == 2  # without the header, this key does not read the cache

    _key, caching_key = gateway_key(cache_enabled=True)
    skipping = sdk(gateway_url, caching_key, **{"X-Portal-Cache": "no-store"})
    skipping.chat.completions.create(model="standin-chat", messages=QUESTION, **EXACT)
    assert cached.stats()["calls"] == 3
    with pytest.raises(openai.BadRequestError, match="X-Portal-Cache must be"):
        sdk(gateway_url, caching_key, **{"X-Portal-Cache": "please"}).chat.completions.create(
            model="standin-chat", messages=QUESTION, **EXACT)


def test_embeddings_are_cached_by_the_same_rules(gateway_url, cached, gateway_key, drain):
    _key, secret = gateway_key(cache_enabled=True)
    client = sdk(gateway_url, secret)
    first = client.embeddings.create(model="standin-embed", input=["refunds take 14 days"], encoding_format="float")
    again = client.embeddings.with_raw_response.create(model="standin-embed", input=["refunds take 14 days"])

    assert again.headers["x-portal-cache"] == "hit" and cached.stats()["calls"] == 1
    assert again.parse().data[0].embedding == pytest.approx(first.data[0].embedding, abs=1e-6)  # base64 rendered
    assert drain() == 2 and UsageEvent.objects.filter(cache_hit=True, operation="embedding").count() == 1


def test_hits_count_as_requests_for_the_keys_limits(gateway_url, cached, gateway_key):
    _key, secret = gateway_key(cache_enabled=True, requests_per_minute=2)
    client = sdk(gateway_url, secret)
    for _ in range(2):
        client.chat.completions.create(model="standin-chat", messages=QUESTION, **EXACT)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="standin-chat", messages=QUESTION, **EXACT)


def test_the_entry_is_named_by_what_changes_the_answer_only(team):
    def name(team_id=team.pk, alias="chat", prompt_version_id=None, **body):
        call = parse_chat({"model": alias, "messages": QUESTION, **body})
        return cache.entry_key(team_id=team_id, alias=alias, operation="chat", prompt_version_id=prompt_version_id,
                               request=cache.chat_request_normalised(call.request))

    same = name(temperature=0)
    assert same == name(temperature=0.0, user="u-1", metadata={"tenant": "acme"}, stream=True,
                        stream_options={"include_usage": True})
    assert len({same, name(temperature=0, max_tokens=5), name(temperature=0, seed=3), name(temperature=0.2),
                name(alias="other", temperature=0), name(team_id=team.pk + 1, temperature=0),
                name(prompt_version_id=7, temperature=0)}) == 7
    assert cache.sampled(None) and cache.sampled(0.2) and cache.sampled("0") and not cache.sampled(0)
