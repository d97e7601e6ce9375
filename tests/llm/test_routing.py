"""Aliases, fallback and breakers in the one call path, against the stand-in upstream (apps/llm/standin.py).

Sync (calls.py) and async (acalls.py) faces run the same plan (routing.RoutePlan); both are exercised. Breaker
windows and cooldowns are shortened through settings so nothing waits longer than a few tenths of a second.
"""

from __future__ import annotations

import random
import socket
import time
from collections import Counter

import pytest
from asgiref.sync import async_to_sync

from apps.audit.models import AuditEvent
from apps.core import redis as core_redis
from apps.costs.models import UsageEvent
from apps.costs.services import UsageContext
from apps.llm import acalls, breakers, calls, routing
from apps.llm.aliases import alias_create, alias_update, aliases_seed_local, deployment_create
from apps.llm.errors import BadRequest, ModelNotFound, ProviderUnavailable, StreamInterrupted
from apps.llm.models import ModelKind, RoutingStrategy
from apps.llm.results import ChatRequest
from apps.llm.services import provider_create
from tests.support.standin import standin_model, standin_provider

pytestmark = pytest.mark.django_db

QUESTION = [{"role": "user", "content": "Question: how long do refunds take?"}]
ANSWER = "Answer: how long do refunds take?"


@pytest.fixture(autouse=True)
def quick_breakers(settings):
    settings.LLM_BREAKER_WINDOW_SECONDS = 30
    settings.LLM_BREAKER_MIN_REQUESTS = 3
    settings.LLM_BREAKER_FAILURE_RATIO = 0.5
    settings.LLM_BREAKER_COOLDOWN_SECONDS = 0.3


@pytest.fixture
def upstream(llm_standin):
    return standin_provider(llm_standin)


@pytest.fixture
def make_alias(upstream):
    """make_alias("support", [("svc-a", {"priority": 0}), …]) -> the alias; breaker state starts clean."""
    made = []

    def make(name, deployments, *, kind=ModelKind.CHAT, provider=None, **alias_fields):
        alias = alias_create(name=name, kind=kind, **alias_fields)
        for remote, options in deployments:
            options = dict(options)
            model_options = {k: options.pop(k) for k in ("context_window", "max_output_tokens") if k in options}
            model = standin_model(options.pop("provider", provider or upstream), f"{name}-{remote}", remote,
                                  kind=kind, **model_options)
            made.append(deployment_create(alias=alias, model=model, **options))
        for deployment in made:
            breakers.reset(deployment.pk)
        return alias

    yield make
    for deployment in made:
        breakers.reset(deployment.pk)


def context():
    return UsageContext(source="api", feature="routing-test")


def answered_by(result) -> str:
    return result.deployment.split("/", 1)[1]


def calls_to(llm_standin, remote: str) -> int:
    return llm_standin.standin.stats()["models"].get(remote, 0)


@pytest.mark.parametrize("failing", ["fail-500", "rate-limit", "fail-503"])
def test_a_failing_primary_falls_back_to_the_next_tier(make_alias, llm_standin, failing):
    make_alias("support", [(failing, {"priority": 0}), ("standin-chat", {"priority": 1})])

    result = calls.chat(model="support", messages=QUESTION, context=context())

    assert result.text == ANSWER
    assert (result.alias, answered_by(result), result.fallbacks) == ("support", "support-standin-chat", 1)
    event = UsageEvent.objects.get()
    assert (event.model, event.status) == ("support-standin-chat", "ok")  # one event, on the model that answered
    assert calls_to(llm_standin, failing) == 1


def test_a_timeout_falls_back(make_alias, llm_standin):
    impatient = provider_create(name="standin-impatient", kind="openai_compatible", base_url=llm_standin.base_url,
                                max_retries=0, timeout_seconds=0.2)
    make_alias("support", [("slow", {"priority": 0, "provider": impatient}), ("standin-chat", {"priority": 1})])

    result = calls.chat(model="support", messages=QUESTION, context=context())

    assert answered_by(result) == "support-standin-chat" and result.fallbacks == 1


def test_a_refused_connection_falls_back(make_alias, llm_standin):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    nowhere = provider_create(name="standin-nowhere", kind="openai_compatible",
                              base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, timeout_seconds=2)
    make_alias("support", [("svc-a", {"priority": 0, "provider": nowhere}), ("standin-chat", {"priority": 1})])

    result = async_to_sync(acalls.achat)(model="support", request=ChatRequest(messages=QUESTION), context=context(),
                                         recorder=_Records())

    assert result.text == ANSWER and result.fallbacks == 1


def test_a_context_length_error_falls_back_only_to_a_larger_window(make_alias, llm_standin):
    make_alias("support", [("ctx-8", {"priority": 0, "context_window": 8, "max_output_tokens": 8}),
                           ("ctx-9", {"priority": 1, "context_window": 8, "max_output_tokens": 8}),
                           ("standin-chat", {"priority": 2})])

    result = calls.chat(model="support", messages=QUESTION, context=context())

    assert answered_by(result) == "support-standin-chat"
    assert calls_to(llm_standin, "ctx-8") == 1 and calls_to(llm_standin, "ctx-9") == 0  # same window: skipped


def test_a_bad_request_is_neither_retried_nor_fallen_back(make_alias, llm_standin):
    make_alias("support", [("fail-400", {"priority": 0}), ("standin-chat", {"priority": 1})])

    with pytest.raises(BadRequest, match="HTTP 400"):
        calls.chat(model="support", messages=QUESTION, context=context())

    assert calls_to(llm_standin, "standin-chat") == 0
    assert UsageEvent.objects.get().error_type == "BadRequest"


def test_when_every_deployment_fails_the_last_error_is_raised_within_max_attempts(make_alias, llm_standin, sleeps):
    make_alias("support", [("fail-500", {"priority": 0}), ("fail-503", {"priority": 1})], max_attempts=3)

    with pytest.raises(ProviderUnavailable, match="HTTP"):
        calls.chat(model="support", messages=QUESTION, context=context())

    assert calls_to(llm_standin, "fail-500") + calls_to(llm_standin, "fail-503") == 3
    assert len(sleeps) == 1  # one backoff between the first pass and the second
    event = UsageEvent.objects.get()
    assert (event.status, event.error_type) == ("error", "ProviderUnavailable")


def test_the_breaker_opens_skips_the_deployment_then_a_probe_closes_it(make_alias, llm_standin):
    alias = make_alias("support", [("svc-a", {"priority": 0}), ("standin-chat", {"priority": 1})])
    primary = alias.deployments.get(priority=0)
    llm_standin.standin.control({"fail_models": {"svc-a": 503}})

    for _ in range(3):  # each call: svc-a fails, the fallback answers
        assert calls.chat(model="support", messages=QUESTION, context=context()).fallbacks == 1
    assert breakers.states([primary.pk])[primary.pk].state == breakers.OPEN

    result = calls.chat(model="support", messages=QUESTION, context=context())
    assert result.fallbacks == 0 and answered_by(result) == "support-standin-chat"  # skipped, not tried
    assert calls_to(llm_standin, "svc-a") == 3

    llm_standin.standin.control({"fail_models": {}})  # the upstream recovers
    time.sleep(0.35)  # the cooldown (0.3 s in this test)
    assert breakers.states([primary.pk])[primary.pk].state == breakers.HALF_OPEN
    result = calls.chat(model="support", messages=QUESTION, context=context())
    assert answered_by(result) == "support-svc-a"  # the half-open probe went through and succeeded
    assert breakers.states([primary.pk])[primary.pk].state == breakers.CLOSED


def test_a_failed_probe_opens_the_breaker_again(make_alias, llm_standin):
    alias = make_alias("support", [("svc-a", {"priority": 0}), ("standin-chat", {"priority": 1})])
    primary = alias.deployments.get(priority=0)
    llm_standin.standin.control({"fail_models": {"svc-a": 503}})
    for _ in range(3):
        calls.chat(model="support", messages=QUESTION, context=context())
    time.sleep(0.35)

    calls.chat(model="support", messages=QUESTION, context=context())  # the probe fails: open again

    assert breakers.states([primary.pk])[primary.pk].state == breakers.OPEN
    assert calls_to(llm_standin, "svc-a") == 4


def test_every_breaker_open_is_a_clear_unavailable_error(make_alias, llm_standin):
    alias = make_alias("support", [("svc-a", {})])
    llm_standin.standin.control({"fail_models": {"svc-a": 503}})
    for _ in range(3):
        with pytest.raises(ProviderUnavailable):
            calls.chat(model="support", messages=QUESTION, context=context())

    with pytest.raises(ProviderUnavailable, match="circuit breaker open"):
        calls.chat(model="support", messages=QUESTION, context=context())
    assert calls_to(llm_standin, "svc-a") == 3 and alias.deployments.count() == 1


def test_a_deployment_at_its_concurrency_limit_is_passed_over(make_alias, llm_standin):
    alias = make_alias("support", [("svc-a", {"priority": 0, "max_concurrency": 1}),
                                   ("standin-chat", {"priority": 1})])
    route = routing.resolve("support")
    held = breakers.acquire(route.targets[0])  # another call holds svc-a's one slot

    result = calls.chat(model="support", messages=QUESTION, context=context())

    assert answered_by(result) == "support-standin-chat" and calls_to(llm_standin, "svc-a") == 0
    breakers.release(held, "ok")
    assert answered_by(calls.chat(model="support", messages=QUESTION, context=context())) == "support-svc-a"
    assert alias.deployments.count() == 2


def test_the_weighted_split_follows_the_weights():
    """Chi-square on the first choice of 4,000 plans: 3:1 weights give 3:1 traffic (df=1, p=0.001: 10.83)."""
    route = _route(weights=(3, 1))
    rng = random.Random(11)
    first = Counter(routing.RoutePlan(route, rng=rng).order(route.targets_list)[0].deployment for _ in range(4000))

    expected = {"a": 3000, "b": 1000}
    chi_square = sum((first[k] - e) ** 2 / e for k, e in expected.items())
    assert chi_square < 10.83, first


def test_least_in_flight_goes_to_the_idlest_deployment():
    route = _route(weights=(1, 1, 1), strategy=RoutingStrategy.LEAST_INFLIGHT)
    plan = routing.RoutePlan(route, rng=random.Random(3))

    assert [t.deployment for t in plan.order(route.targets_list, [4, 0, 2])] == ["b", "c", "a"]


def test_a_stream_cut_mid_way_raises_and_is_not_fallen_back(make_alias, llm_standin):
    make_alias("support", [("cut-stream", {"priority": 0}), ("standin-chat", {"priority": 1})])
    stream = calls.chat_stream(model="support", messages=QUESTION, context=context())
    received = []

    with pytest.raises(StreamInterrupted):
        for delta in stream:
            received.append(delta)

    assert received and "".join(received) != ANSWER
    assert calls_to(llm_standin, "standin-chat") == 0  # bytes were sent: no fallback after the first byte
    assert UsageEvent.objects.get().error_type == "StreamInterrupted"


def test_a_stream_falls_back_before_its_first_byte(make_alias, llm_standin):
    make_alias("support", [("fail-500", {"priority": 0}), ("standin-chat", {"priority": 1})])
    records = _Records()

    async def go():
        stream = acalls.achat_stream(model="support", request=ChatRequest(messages=QUESTION), context=context(),
                                     recorder=records)
        await stream.open()
        return "".join([d.text async for d in stream]), stream.result

    text, result = async_to_sync(go)()
    assert text == ANSWER and result.fallbacks == 1
    assert (records.only.deployment, records.only.fallbacks, records.only.status) == (
        "support/support-standin-chat", 1, "ok")


def test_an_alias_change_is_seen_by_every_process_through_the_stamp(make_alias, llm_standin, settings):
    alias = make_alias("support", [("standin-chat", {})])
    assert routing.resolve("support").first.model.remote_name == "standin-chat"
    settings.LLM_ROUTES_CHECK_SECONDS = 0
    type(alias).objects.filter(pk=alias.pk).update(is_active=False)  # as another process would, unseen here
    assert not routing.resolve("support").missing  # still the cached route: this process saw no signal

    core_redis.client().set(core_redis.key(*routing.STAMP_PARTS), "another-process-changed-it")

    with pytest.raises(ModelNotFound, match="disabled"):
        routing.resolve("support").check(ModelKind.CHAT)


def test_alias_writes_are_validated_and_audited(make_alias, upstream, admin_user):
    alias = make_alias("support", [("standin-chat", {})])
    embedder = standin_model(upstream, "sc-embed", "embed-8", kind=ModelKind.EMBEDDING)

    with pytest.raises(Exception, match="embedding model"):
        deployment_create(alias=alias, model=embedder)
    with pytest.raises(Exception, match="catalog model has this name"):
        alias_create(name="sc-embed", kind=ModelKind.EMBEDDING)
    with pytest.raises(Exception, match="deadline_seconds"):
        alias_update(alias=alias, deadline_seconds=0)
    alias_update(alias=alias, actor=admin_user, strategy=RoutingStrategy.LEAST_INFLIGHT)

    actions = list(AuditEvent.objects.filter(action__startswith="llm.").values_list("action", flat=True))
    assert actions.count("llm.alias.create") == 1 and actions.count("llm.deployment.create") == 1
    assert AuditEvent.objects.get(action="llm.alias.update").changes["strategy"] == ["weighted", "least_inflight"]


def test_the_demo_aliases_route_to_the_offline_models(local_models):
    assert aliases_seed_local() == 2 and aliases_seed_local() == 0

    answer = calls.chat(model="chat", messages=[{"role": "user", "content": "Refunds take 14 days."}],
                        context=context())
    vectors = calls.embed(model="embeddings", texts=["refunds"], context=context())

    assert answer.alias == "chat" and answer.model == "local-extractive"
    assert vectors.dimensions == 384 and vectors.alias == "embeddings"


# -- helpers --------------------------------------------------------------------------------------------------
class _Records(list):
    async def __call__(self, record):
        self.append(record)

    @property
    def only(self):
        assert len(self) == 1
        return self[0]


class _FakeRoute:
    """Just what RoutePlan.order needs: a route and its targets, no database."""

    def __init__(self, targets, strategy):
        self.alias, self.name, self.strategy = "x", "x", strategy
        self.targets_list = targets
        self.targets = tuple(targets)
        self.deadline_seconds, self.max_attempts = 10.0, 3

    routed = True


def _route(weights, strategy=RoutingStrategy.WEIGHTED):
    from types import SimpleNamespace

    provider = SimpleNamespace(max_retries=0, timeout_seconds=5)
    model = SimpleNamespace(provider=provider, context_window=8192, max_output_tokens=1024)
    targets = [routing.Target(model=model, deployment_id=i, deployment="abc"[i], weight=w)
               for i, w in enumerate(weights)]
    return _FakeRoute(targets, strategy)
