"""Budgets before the call: the gateway reserves a call's worst case in Redis on every budget that applies (the
key's dollars per day, the costs budgets with a hard cap), settles it from the usage the upstream reports,
releases it when the call fails, sweeps what leaks — and a hundred concurrent calls cannot overspend a cap."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import openai
import pytest
from django.conf import settings as django_settings
from openai import AsyncOpenAI, OpenAI

from apps.core import redis as portal_redis
from apps.costs.models import Budget, UsageEvent
from apps.costs.pricing import TokenCounts
from apps.costs.services import UsageContext, budget_create, usage_event_record
from apps.gateway import budgets
from apps.gateway.budgets import Counter
from apps.gateway.keys import KeyInfo
from apps.llm import callcore
from apps.llm.acalls import PreflightCheck
from apps.llm.models import ModelKind
from apps.llm.results import ChatRequest
from apps.reviews.models import State, UseCase
from tests.factories import PriceFactory
from tests.support.standin import standin_model, standin_provider

QUESTION = [{"role": "user", "content": "How long do refunds take for an order paid by card last week, please?"}]
IN_PRICE, OUT_PRICE = Decimal("1000"), Decimal("2000")  # dollars per million tokens: a call costs cents
MAX_TOKENS = 10


def worst_case() -> Decimal:
    """What the gateway reserves for one QUESTION call with max_tokens=MAX_TOKENS (input estimate plus margin)."""
    estimate = callcore.input_estimate(ChatRequest(messages=QUESTION))
    tokens = math.ceil(estimate * (1 + django_settings.GATEWAY_BUDGET_INPUT_MARGIN))
    return (tokens * IN_PRICE + MAX_TOKENS * OUT_PRICE) / 1_000_000


@pytest.fixture
def priced_standin(llm_standin, transactional_db):
    provider = standin_provider(llm_standin)
    for name in ("standin-chat", "fail-503"):
        standin_model(provider, name, remote_name=name)
        PriceFactory(model_name=name, input_per_mtok=IN_PRICE, output_per_mtok=OUT_PRICE)
    return llm_standin


@pytest.fixture
def clean_budget_keys():
    client = portal_redis.client()
    for name in client.scan_iter(match=portal_redis.key("gateway", "budget", "*"), count=1000):
        client.delete(name)


def key_counter(cap: str, name: str = "k1-1") -> Counter:
    return Counter(name=name, cap=Decimal(cap), expire_at=int(time.time()) + 3600)


def reserve(request_id: str, counters, amount: str, now: float | None = None):
    stamp = portal_redis.client().get(budgets.costs_selectors.capped_budgets_stamp_key()) or b""
    return asyncio.run(budgets.reserve(request_id, counters, Decimal(amount), stamp, now))


# -- the Redis units ----------------------------------------------------------------------------------------


def _key_info(**values) -> KeyInfo:
    fields = dict(id=7, prefix="pk-gw-00000007", team_id=1, feature="bot", use_case_id=None, allowed_aliases=(),
                  requests_per_minute=None, requests_per_day=None, tokens_per_minute=None, tokens_per_day=None,
                  dollars_per_day=Decimal("5"), expires_at=None, revoked_at=None, overlap_ends_at=None,
                  cache_enabled=False, store_bodies=False)
    return KeyInfo(**{**fields, **values})


def test_a_calls_counters_are_the_days_until_the_day_its_budget_or_its_cap_changes(db):
    month = Budget(pk=41, name="Bot month", period="month", hard_cap=Decimal("100"))
    info = _key_info()
    noon = datetime(2026, 12, 6, 12, tzinfo=UTC).timestamp()

    first = budgets.counters_for(info, 1, "bot", "", (month,), noon)
    later = budgets.counters_for(info, 1, "bot", "", (month,), noon + 3600)
    assert [c is d for c, d in zip(first, later, strict=True)] == [True, True]  # made once a day, not per call
    assert [c.name for c in first] == [f"b41-{int(datetime(2026, 12, 1, tzinfo=UTC).timestamp())}", f"k7-{int(noon // 86400)}"]

    edited = Budget(pk=41, name="Bot month", period="week", hard_cap=Decimal("100"))  # the stamp's new object
    raised = _key_info(dollars_per_day=Decimal("9"))
    again = budgets.counters_for(raised, 1, "bot", "", (edited,), noon + 7200)
    assert again[0].budget is edited and again[0].name == f"b41-{int(datetime(2026, 11, 30, tzinfo=UTC).timestamp())}"
    assert again[1].cap == Decimal("9")
    month.hard_cap = Decimal("50")  # a cap edited in place is seen too
    assert budgets.counters_for(info, 1, "bot", "", (month,), noon)[0].cap == Decimal("50")

    tomorrow = budgets.counters_for(info, 1, "bot", "", (month,), noon + 86400)
    assert tomorrow[1].name == f"k7-{int(noon // 86400) + 1}"


def test_a_reservation_holds_the_worst_case_until_it_settles_to_the_real_cost(clean_budget_keys):
    counter = key_counter("1.00")
    assert reserve("r1", [counter], "0.40")[0] == "ok"
    assert reserve("r2", [counter], "0.40")[0] == "ok"
    outcome, (index, used, held) = reserve("r3", [counter], "0.40")
    assert (outcome, index, budgets.dollars(used), budgets.dollars(held)) == ("over", "1", Decimal("0.80"),
                                                                              Decimal("0.80"))

    assert asyncio.run(budgets.settle("r1", Decimal("0.05")))
    assert budgets.counter_state("k1-1") == {"held": Decimal("0.4"), "spent": Decimal("0.05")}
    assert reserve("r3", [counter], "0.40")[0] == "ok"  # the settled call freed what it did not use
    assert not asyncio.run(budgets.settle("r1", Decimal("0.05")))  # settled once: a second settle changes nothing


def test_a_release_gives_the_whole_hold_back(clean_budget_keys):
    counter = key_counter("0.50")
    reserve("r1", [counter], "0.50")
    assert reserve("r2", [counter], "0.01")[0] == "over"
    assert asyncio.run(budgets.release("r1"))
    assert budgets.counter_state("k1-1")["held"] == 0
    assert reserve("r2", [counter], "0.50")[0] == "ok"


def test_one_reservation_covers_every_budget_or_none_of_them(clean_budget_keys):
    roomy, tight = key_counter("10", "k1-1"), key_counter("0.30", "k2-1")
    reserve("r1", [roomy, tight], "0.25")
    outcome, (index, used, _held) = reserve("r2", [roomy, tight], "0.25")
    assert (outcome, index, budgets.dollars(used)) == ("over", "2", Decimal("0.25"))
    assert budgets.counter_state("k1-1")["held"] == Decimal("0.25")  # the roomy one was not touched either


def test_a_budget_counter_is_seeded_from_the_ledger_before_its_first_reservation(clean_budget_keys):
    budget = Budget(id=987, name="Support", hard_cap=Decimal("1"), period="month")
    counter = budgets.budget_counter(budget, datetime.now(UTC))
    assert reserve("r1", [counter], "0.10")[:2] == ("seed", ["1"])
    portal_redis.client().hset(counter.key, "base", budgets.units(Decimal("0.95")))  # what _seed writes: the ledger's spend
    assert reserve("r1", [counter], "0.10")[0] == "over"
    assert reserve("r1", [counter], "0.05")[0] == "ok"


def test_the_sweeper_releases_holds_whose_call_never_came_back(clean_budget_keys, settings):
    counter = key_counter("1.00")
    now = time.time()
    reserve("lost", [counter], "0.60", now=now)
    reserve("fresh", [counter], "0.30", now=now + settings.GATEWAY_BUDGET_RESERVATION_TTL_SECONDS)

    assert budgets.sweep(now=now + settings.GATEWAY_BUDGET_RESERVATION_TTL_SECONDS + 1) == 1
    assert budgets.counter_state("k1-1")["held"] == Decimal("0.30")
    assert not asyncio.run(budgets.settle("lost", Decimal("0.60")))  # a late answer finds nothing to settle


def test_a_settled_cost_waits_in_pend_for_the_ledger_and_the_sweeper_drops_it_if_never_confirmed(
        clean_budget_keys, settings):
    budget = Budget(id=988, name="Support", hard_cap=Decimal("1"), period="month")
    counter = budgets.budget_counter(budget, datetime.now(UTC))
    portal_redis.client().hset(counter.key, "base", budgets.units(Decimal("0.20")))
    now = time.time()
    reserve("r1", [counter], "0.30", now=now)
    asyncio.run(budgets.settle("r1", Decimal("0.10"), now=now))
    assert budgets.counter_state(counter.name) == {"base": Decimal("0.20"), "held": 0, "pend": Decimal("0.10")}

    assert budgets.sweep(now=now + settings.GATEWAY_BUDGET_RESERVATION_TTL_SECONDS + 1) == 1
    assert budgets.counter_state(counter.name)["pend"] == 0  # by then the ledger's base holds it, or never will


def test_a_stale_budget_list_is_refused_by_the_script(clean_budget_keys):
    portal_redis.client().set(budgets.costs_selectors.capped_budgets_stamp_key(), "current")
    answer = asyncio.run(budgets.reserve("r1", [key_counter("1")], Decimal("0.1"), b"older"))
    assert answer == ("stale", ["current"])


def _check(worst: str) -> PreflightCheck:
    return PreflightCheck(context=UsageContext(source="gateway", team_id=1, feature="bot", request_id="r-ahead"),
                          model="m", provider="p", price_name="m", alias="", input_tokens=10, max_output_tokens=10,
                          worst_case_cost=Decimal(worst))


def test_a_hold_reserved_ahead_is_kept_when_it_covers_the_call_and_replaced_when_it_does_not(clean_budget_keys,
                                                                                          monkeypatch):
    info = KeyInfo(id=1, prefix="pk-gw-00000001", team_id=1, feature="bot", use_case_id=None, allowed_aliases=(),
                   requests_per_minute=None, requests_per_day=None, tokens_per_minute=None, tokens_per_day=None,
                   dollars_per_day=Decimal("1.00"), expires_at=None, revoked_at=None, overlap_ends_at=None,
                   cache_enabled=False, store_bodies=False)

    stamp_key = budgets.costs_selectors.capped_budgets_stamp_key()
    portal_redis.client().set(stamp_key, "0", nx=True)
    stamp = portal_redis.client().get(stamp_key)

    async def no_capped_budgets(current=None):
        return stamp, ()

    monkeypatch.setattr(budgets, "capped_budgets", no_capped_budgets)

    async def ahead_then_preflight(worst_ahead: str, worst_call: str) -> budgets.BudgetHold:
        hold = budgets.BudgetHold(info)
        ahead = await hold.ahead(_check(worst_ahead))
        pipe = portal_redis.async_client().pipeline(transaction=False)
        ahead.queue(pipe)  # what limits.stamp_and_count does on the stamp's pipeline
        (answer,) = await pipe.execute(raise_on_error=False)
        assert ahead.took(answer) and hold.unclaimed
        await hold.preflight(_check(worst_call))
        return hold

    (name,) = [budgets.key_counter(info, time.time()).name]
    kept = asyncio.run(ahead_then_preflight("0.30", "0.20"))
    assert kept.amount == Decimal("0.30") and not kept.unclaimed  # the call's now: released only by its record
    assert budgets.counter_state(name)["held"] == Decimal("0.30")
    asyncio.run(kept.release_unused())  # not unclaimed: nothing happens
    assert asyncio.run(budgets.release("r-ahead"))

    grown = asyncio.run(ahead_then_preflight("0.20", "0.30"))  # e.g. a redaction lengthened the input
    assert grown.amount == Decimal("0.30")
    assert budgets.counter_state(name)["held"] == Decimal("0.30")  # given back, reserved afresh: held once


# -- through the gateway, with the official SDK -------------------------------------------------------------


def test_a_hundred_concurrent_calls_cannot_overspend_a_budget(gateway_url, priced_standin, gateway_key, team, owner,
                                                              drain):
    cap = Decimal("0.50")
    budget_create(actor=owner, name="Support bot cap", team=team, feature="support-bot", amount="0.50",
                  hard_cap=str(cap))
    _key, secret = gateway_key()
    priced_standin.standin.control({"latency_ms": 20})  # calls overlap: the cap is decided while others are in flight

    async def race():
        sdk = AsyncOpenAI(base_url=gateway_url, api_key=secret, max_retries=0)

        async def one():
            try:
                await sdk.chat.completions.create(model="standin-chat", messages=QUESTION, max_tokens=MAX_TOKENS)
                return "ok"
            except openai.RateLimitError as refusal:
                return refusal

        try:
            return await asyncio.gather(*(one() for _ in range(100)))
        finally:
            await sdk.close()

    outcomes = asyncio.run(race())
    drain()

    refusals = [o for o in outcomes if o != "ok"]
    answered = len(outcomes) - len(refusals)
    spent = sum(e.cost for e in UsageEvent.objects.filter(status="ok"))
    assert answered >= 1 and refusals
    assert spent <= cap + worst_case()  # never more than one call's worst case past the cap
    assert all(r.status_code == 429 and r.code == "insufficient_quota" and "Support bot cap" in r.message
               for r in refusals)
    assert UsageEvent.objects.filter(status="refused", error_type="insufficient_quota").count() == len(refusals)
    assert UsageEvent.objects.filter(status="ok").count() == answered
    counter = next(iter(_counters("b")))
    assert counter["held"] == 0 and counter.get("pend", 0) == 0  # settled, and the ledger holds it all now
    assert counter["base"] == spent


def _counters(kind: str):
    client = portal_redis.client()
    prefix = budgets.counter_prefix()
    for name in client.scan_iter(match=prefix + kind + "*"):
        short = name.decode()[len(prefix):]
        if ":" not in short:
            yield budgets.counter_state(short)


def test_existing_team_and_tenant_budgets_apply_to_gateway_traffic_and_see_the_portals_own_spend(
        gateway_url, priced_standin, gateway_key, team, owner, drain):
    budget_create(actor=owner, name="Support AI monthly", team=team, amount="0.50", hard_cap="0.50")
    budget_create(actor=owner, name="Another feature", team=team, feature="search", amount="0.01", hard_cap="0.01")
    budget_create(actor=owner, name="Acme tenant", team=team, tenant="acme", amount="0.01", hard_cap="0.01")
    _key, secret = gateway_key()
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    sdk.chat.completions.create(model="standin-chat", messages=QUESTION, max_tokens=MAX_TOKENS)  # seeds the counter
    with pytest.raises(openai.RateLimitError, match="Acme tenant"):  # the tenant from metadata, as on the ledger
        sdk.chat.completions.create(model="standin-chat", messages=QUESTION, max_tokens=MAX_TOKENS,
                                    metadata={"tenant": "acme"})

    # the portal's own calls (a playground run) spend on the same budget in PostgreSQL
    usage_event_record(context=UsageContext(source="playground", team_id=team.pk, feature="playground"),
                       provider="standin", model="standin-chat", operation="chat",
                       tokens=TokenCounts(input_tokens=470), latency_ms=5)
    budgets.reconcile()  # what gateway_recorder does every GATEWAY_BUDGET_SYNC_SECONDS

    with pytest.raises(openai.RateLimitError) as refused:
        sdk.chat.completions.create(model="standin-chat", messages=QUESTION, max_tokens=MAX_TOKENS)
    assert refused.value.code == "insufficient_quota" and "Support AI monthly" in refused.value.message
    assert refused.value.response.headers["x-should-retry"] == "false"  # spent, not held: retrying will not help
    assert int(refused.value.response.headers["retry-after"]) > 0  # until the month's reset
    assert refused.value.body["type"] == "insufficient_quota"
    assert priced_standin.standin.calls == 1  # refused before the call


def test_a_failed_upstream_call_releases_its_reservation(gateway_url, priced_standin, gateway_key, team, owner,
                                                         drain):
    budget_create(actor=owner, name="Support AI monthly", team=team, amount="0.05", hard_cap="0.05")
    _key, secret = gateway_key()
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(model="fail-503", messages=QUESTION, max_tokens=MAX_TOKENS)
    assert priced_standin.standin.calls == 1  # it was reserved and forwarded
    counter = next(iter(_counters("b")))
    assert counter["held"] == 0 and counter.get("pend", 0) == 0
    # the whole cap is free again: a call that needs most of it goes through
    sdk.chat.completions.create(model="standin-chat", messages=QUESTION, max_tokens=MAX_TOKENS)
    drain()
    assert sorted(UsageEvent.objects.values_list("status", flat=True)) == ["error", "ok"]


def test_the_keys_dollars_per_day_refuse_before_the_call_not_after(gateway_url, priced_standin, gateway_key, drain):
    _key, secret = gateway_key(dollars_per_day=Decimal("0.05"))
    sdk = OpenAI(base_url=gateway_url, api_key=secret)  # the SDK's retries on: an exhausted quota is not retried
    sdk.chat.completions.create(model="standin-chat", messages=QUESTION, max_tokens=MAX_TOKENS)
    with pytest.raises(openai.RateLimitError, match="dollars per day") as refused:
        sdk.chat.completions.create(model="standin-chat", messages=QUESTION, max_tokens=MAX_TOKENS)
    assert refused.value.code == "insufficient_quota"
    assert priced_standin.standin.calls == 1  # refused before it was forwarded, and not retried by the SDK
    drain()
    assert sorted(UsageEvent.objects.values_list("status", flat=True)) == ["ok", "refused"]


def test_streams_and_embeddings_settle_from_the_usage_the_upstream_reports(gateway_url, priced_standin,
                                                                          gateway_key, drain):
    provider = standin_provider(priced_standin, name="standin-embeddings")
    standin_model(provider, "embed-8", remote_name="embed-8", kind=ModelKind.EMBEDDING)
    PriceFactory(model_name="embed-8", input_per_mtok=IN_PRICE, output_per_mtok=Decimal("0"))
    _key, secret = gateway_key(dollars_per_day=Decimal("5"))
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    chunks = list(sdk.chat.completions.create(model="standin-chat", messages=QUESTION, stream=True))
    assert chunks and all(c.usage is None for c in chunks)  # the usage chunk was asked for upstream, not relayed
    sdk.embeddings.create(model="embed-8", input=["a refund policy", "a delivery time"])
    drain()

    stream, embedding = UsageEvent.objects.order_by("operation")  # chat, embedding
    (counter,) = _counters("k")
    assert stream.output_tokens > 0 and stream.cost > 0 and embedding.cost > 0
    assert counter["held"] == 0 and counter["spent"] == stream.cost + embedding.cost


def test_a_use_case_budget_refuses_only_the_keys_bound_to_that_use_case(gateway_url, priced_standin, gateway_key,
                                                                         team, owner, drain):
    expires = datetime.now(UTC) + timedelta(days=30)
    capped, other = (UseCase.objects.create(team=team, title=title, state=State.ACTIVE, expires_at=expires)
                     for title in ("Refund helper", "Search helper"))
    budget_create(actor=owner, name="Refund helper cap", team=team, use_case_id=capped.pk,
                  amount=str(worst_case() / 2), hard_cap=str(worst_case() / 2))
    _key, capped_secret = gateway_key(name="refunds", use_case_id=capped.pk)
    _key, other_secret = gateway_key(name="search", use_case_id=other.pk)

    with pytest.raises(openai.RateLimitError) as refused:
        OpenAI(base_url=gateway_url, api_key=capped_secret, max_retries=0).chat.completions.create(
            model="standin-chat", messages=QUESTION, max_tokens=MAX_TOKENS)
    assert refused.value.code == "insufficient_quota" and "Refund helper cap" in refused.value.message
    assert priced_standin.standin.calls == 0  # refused before the call

    answer = OpenAI(base_url=gateway_url, api_key=other_secret, max_retries=0).chat.completions.create(
        model="standin-chat", messages=QUESTION, max_tokens=MAX_TOKENS)
    assert answer.choices and priced_standin.standin.calls == 1
    drain()
    assert sorted(UsageEvent.objects.values_list("use_case_id", "status")) == sorted(
        [(capped.pk, "refused"), (other.pk, "ok")])
