"""Redis round trips on the gateway's hot path: the key stamp rides in the limits' pipeline (ADR 0077), and so does
the budget reservation of a warm key's call (ADR 0126); a call's record, its budget settle and its tokens go in one
script (ADR 0125).

Round trips are counted through wrappers on the asyncio client and on the hot path's pipelined connection (each
command sent alone is one, each pipeline is one), never timed.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal

import httpx
import openai
import pytest
import redis.asyncio
import redis.asyncio.client

from apps.core import redis as portal_redis
from apps.core import resp
from apps.gateway import budgets
from apps.gateway.services import gateway_key_revoke, gateway_key_update
from tests.factories import PriceFactory
from tests.support.standin import standin_model, standin_provider

QUESTION = [{"role": "user", "content": "Question: how long do refunds take?\n\n[1] Refunds take 14 days."}]


@contextlib.contextmanager
def round_trips(monkeypatch):
    """Yields a list that collects, per round trip, the commands it carried (the gateway server's thread too)."""
    trips: list[list[str]] = []
    alone, batched = redis.asyncio.Redis.execute_command, redis.asyncio.client.Pipeline.execute
    hot = resp.Connection.execute

    async def execute_command(self, *args, **options):
        trips.append([str(args[0]).upper()])
        return await alone(self, *args, **options)

    async def execute(self, *args, **options):
        if self.command_stack:
            trips.append([str(command[0][0]).upper() for command in self.command_stack])
        return await batched(self, *args, **options)

    async def hot_execute(self, commands):  # the hot path's pipelined connection (ADR 0130): one write, one trip
        trips.append([str(command[0]).upper() for command in commands])
        return await hot(self, commands)

    sent_now = resp.Connection.send_now

    def send_now(self, commands):  # written at once, its reply read after the answer (ADR 0133): one trip all the same
        sent = sent_now(self, commands)
        if sent is not None:
            trips.append([str(command[0]).upper() for command in commands])
        return sent

    with monkeypatch.context() as patched:
        patched.setattr(resp.Connection, "send_now", send_now)
        patched.setattr(redis.asyncio.Redis, "execute_command", execute_command)
        patched.setattr(redis.asyncio.client.Pipeline, "execute", execute)
        patched.setattr(resp.Connection, "execute", hot_execute)
        yield trips


def warm_trips(monkeypatch, sdk, model: str = "local-extractive") -> list[list[str]]:
    sdk.chat.completions.create(model=model, messages=QUESTION)  # the key is cached in the server now
    with round_trips(monkeypatch) as trips:
        sdk.chat.completions.create(model=model, messages=QUESTION)
    return trips


def test_a_warm_key_reads_its_stamp_in_the_limits_pipeline(gateway_url, local_catalog, gateway_key, monkeypatch):
    _key, limited = gateway_key(requests_per_minute=1000, requests_per_day=100_000)
    _key, unlimited = gateway_key(name="no-limits")
    with_limits = warm_trips(monkeypatch, openai.OpenAI(base_url=gateway_url, api_key=limited, max_retries=0))
    without = warm_trips(monkeypatch, openai.OpenAI(base_url=gateway_url, api_key=unlimited, max_retries=0))

    # The limits cost no round trip of their own: the same number as a key without limits.
    assert len(with_limits) == len(without)
    first = with_limits[0]
    assert first[0] == "GET" and first.count("INCRBY") == 2  # the stamp, then both request windows
    assert not any(trip == ["GET"] for trip in with_limits)  # no stamp GET on its own
    assert without[0] == ["GET"]  # a key without limits: the stamp alone, as before


def _counted(key_id: int) -> int:
    """The requests counted in the key's per-day windows (all of them: a test may straddle midnight)."""
    client = portal_redis.client()
    return sum(int(client.get(name) or 0)
               for name in client.scan_iter(match=portal_redis.key("gateway", "lim", key_id, "rd", "*")))


def test_a_request_refused_before_the_limits_is_not_counted(gateway_url, local_catalog, gateway_key):
    key, secret = gateway_key(allowed_aliases=["local-extractive"], requests_per_day=2)
    sdk = openai.OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    sdk.chat.completions.create(model="local-extractive", messages=QUESTION)  # warm: counted ahead from now on
    for _ in range(3):  # 403 and 400 on a warm key: counted with the stamp, taken back
        with pytest.raises(openai.PermissionDeniedError):
            sdk.chat.completions.create(model="local-minilm", messages=QUESTION)
        not_json = httpx.post(f"{gateway_url}/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                              content=b"{not json")
        assert not_json.status_code == 400
    assert _counted(key.pk) == 1
    sdk.chat.completions.create(model="local-extractive", messages=QUESTION)  # the second of two
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="local-extractive", messages=QUESTION)


def test_a_moved_stamp_reloads_the_key_and_counts_the_request_once(gateway_url, local_catalog, gateway_key, owner):
    key, secret = gateway_key(requests_per_day=100)
    sdk = openai.OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    sdk.chat.completions.create(model="local-extractive", messages=QUESTION)
    gateway_key_update(key=key, requests_per_day=50, actor=owner)  # moves the stamp
    sdk.chat.completions.create(model="local-extractive", messages=QUESTION)  # counted ahead, taken back, recounted
    assert _counted(key.pk) == 2
    gateway_key_revoke(key=key, actor=owner)
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        sdk.chat.completions.create(model="local-extractive", messages=QUESTION)
    assert _counted(key.pk) == 2  # the revoked request was taken back


def test_the_tokens_ride_with_the_record_so_a_warm_limited_key_makes_two_round_trips(gateway_url, local_catalog,
                                                                                     gateway_key, monkeypatch):
    key, secret = gateway_key(requests_per_minute=1000, tokens_per_minute=1_000_000, tokens_per_day=10_000_000)
    sdk = openai.OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    trips = warm_trips(monkeypatch, sdk)

    assert len(trips) == 2  # the stamp with the limits' counts; the record with the tokens it used (ADR 0125)
    assert trips[1] == ["EVALSHA"]
    client = portal_redis.client()
    used = sum(int(client.get(name) or 0)
               for name in client.scan_iter(match=portal_redis.key("gateway", "lim", key.pk, "td", "*")))
    assert used > 0


def _priced_standin(llm_standin, settings) -> None:
    standin_model(standin_provider(llm_standin), "standin-chat", remote_name="standin-chat")
    PriceFactory(model_name="standin-chat", input_per_mtok=Decimal("1"), output_per_mtok=Decimal("2"))
    settings.GATEWAY_ADMISSION_TTL_SECONDS = settings.LLM_ROUTES_CHECK_SECONDS = 3600  # no stamp is due meanwhile


def _key_counter(key_id: int) -> dict:
    (name,) = [n.decode().rsplit(":", 1)[1] for n in portal_redis.client().scan_iter(
        match=budgets.counter_prefix() + f"k{key_id}-*")]
    return budgets.counter_state(name)


def test_a_warm_request_on_a_key_with_limits_and_a_budget_makes_two_round_trips(gateway_url, llm_standin,
                                                                                gateway_key, monkeypatch, settings):
    _priced_standin(llm_standin, settings)
    key, secret = gateway_key(requests_per_minute=1000, tokens_per_minute=1_000_000, dollars_per_day=Decimal("100"))
    sdk = openai.OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    trips = warm_trips(monkeypatch, sdk, model="standin-chat")

    # The stamp with the limits' counts and the reservation (ADR 0126); the record with its hold settled and its
    # tokens charged (ADR 0125).
    assert [trip[0] for trip in trips] == ["GET", "EVALSHA"]
    assert trips[0][-1] == "EVALSHA"
    counter = _key_counter(key.pk)
    assert counter["held"] == 0 and counter["spent"] > 0  # both calls settled at their cost, nothing left held


def test_a_request_refused_after_its_reservation_gives_it_back(gateway_url, llm_standin, gateway_key, settings):
    _priced_standin(llm_standin, settings)
    key, secret = gateway_key(requests_per_minute=1, dollars_per_day=Decimal("100"))
    sdk = openai.OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    sdk.chat.completions.create(model="standin-chat", messages=QUESTION)  # the minute's one request; the key cached
    spent = _key_counter(key.pk)["spent"]
    with pytest.raises(openai.RateLimitError) as refused:  # reserved with the count, refused by it: given back
        sdk.chat.completions.create(model="standin-chat", messages=QUESTION)
    assert refused.value.code == "key_limit"
    counter = _key_counter(key.pk)
    assert counter["held"] == 0 and counter["spent"] == spent
    assert portal_redis.client().zcard(budgets.held_key()) == 0


def test_a_revoked_key_gives_back_the_reservation_made_with_its_stale_stamp(gateway_url, llm_standin, gateway_key,
                                                                           owner, settings):
    _priced_standin(llm_standin, settings)
    key, secret = gateway_key(dollars_per_day=Decimal("100"))
    sdk = openai.OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    sdk.chat.completions.create(model="standin-chat", messages=QUESTION)
    spent = _key_counter(key.pk)["spent"]
    gateway_key_revoke(key=key, actor=owner)  # moves the stamp: the next request reserves, then finds it moved
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        sdk.chat.completions.create(model="standin-chat", messages=QUESTION)
    counter = _key_counter(key.pk)
    assert counter["held"] == 0 and counter["spent"] == spent
    assert llm_standin.standin.calls == 1
