"""Prompt by reference: `model: "prompt:NAME@LABEL"` renders the catalog's version and calls its model, with the
official SDK against the stand-in upstream; the label, the kill switch and the usage row act on live traffic."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import openai
import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import connections
from django.utils import timezone
from openai import OpenAI

from apps.costs.models import UsageEvent
from apps.gateway import prompt_ref
from apps.gateway.keys import KeyInfo
from apps.prompts.content import Draft
from apps.prompts.playground import execute_run, prepare_runs
from apps.prompts.services import (
    promotion_request_expedite,
    promotion_request_open,
    prompt_create,
    version_create,
)
from apps.reviews.models import State, UseCase, UseCasePrompt
from apps.reviews.prompt_status import forget_prompt_status
from tests.support.standin import standin_model, standin_provider

REF = "prompt:support/refund-policy-qa@production"
SYSTEM_V1 = "You answer refund questions for {{ customer }}. Refunds take 14 days."
SYSTEM_V2 = "You answer refund questions for {{ customer }}. Refunds now take 7 days."


def _draft(system: str, model: str) -> Draft:
    return Draft(kind="chat", messages=[{"role": "system", "content": system},
                                        {"role": "user", "content": "{{ question }}"}],
                 config={"model": model, "temperature": 0.1})


@pytest.fixture
def catalog(llm_standin, transactional_db):
    """Two catalog models on the stand-in, told apart by the remote model name the stand-in receives."""
    provider = standin_provider(llm_standin)
    standin_model(provider, "support-small", remote_name="standin-small")
    standin_model(provider, "support-large", remote_name="standin-large")
    return llm_standin.standin


@pytest.fixture
def to_production(admin_user, engineer):
    """Move production through the catalog's own path (a promotion request, expedited by an admin)."""

    def move(prompt, version):
        request = promotion_request_open(prompt=prompt, version=version, actor=engineer)
        promotion_request_expedite(request=request, user=admin_user, reason="Release the new refund wording now.")

    return move


@pytest.fixture
def refund_prompt(team, engineer, to_production):
    cache.clear()  # cached answers of earlier runs (reviews' prompt status by prompt id) must not leak in
    prompt = prompt_create(team=team, name="support/refund-policy-qa", kind="chat", actor=engineer,
                           draft=_draft(SYSTEM_V1, "support-small"), commit_message="first")
    to_production(prompt, prompt.versions.get())
    return prompt


@pytest.fixture
def sdk(gateway_url, gateway_server, gateway_key, settings):
    settings.GATEWAY_ADMISSION_TTL_SECONDS = 0  # the kill switch is asked on every request: no waiting in tests
    gateway_server[1].prompts.clear()
    _key, secret = gateway_key()
    return OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)


def _ask(sdk, **extra):
    return sdk.chat.completions.create(model=REF, messages=[{"role": "user", "content": "Thanks!"}],
                                       metadata={"customer": "ACME", "question": "How long do refunds take?",
                                                 "tenant": "acme"}, **extra)


def test_the_upstream_receives_the_rendered_messages_and_the_versions_model(sdk, catalog, refund_prompt):
    """…with the client's messages after the prompt's; the label defaults to production; /v1/models lists it."""
    answer = _ask(sdk)
    sent = catalog.requests[-1]
    assert sent["model"] == "standin-small" and answer.model == "support-small"
    assert sent["messages"] == [
        {"role": "system", "content": "You answer refund questions for ACME. Refunds take 14 days."},
        {"role": "user", "content": "How long do refunds take?"},
        {"role": "user", "content": "Thanks!"},  # the client's own messages come after the prompt's
    ]
    assert sent["temperature"] == 0.1  # the version's parameters

    plain = sdk.chat.completions.create(model="prompt:support/refund-policy-qa", messages=[],  # label: production
                                        metadata={"customer": "ACME", "question": "How long?"})
    assert plain.model == "support-small"
    listed = {m.id for m in sdk.models.list()}
    assert {"prompt:support/refund-policy-qa@production", "prompt:support/refund-policy-qa@latest"} <= listed


def test_moving_the_production_label_moves_the_next_request(sdk, catalog, refund_prompt, engineer, to_production):
    _ask(sdk)
    assert catalog.requests[-1]["model"] == "standin-small"
    v2 = version_create(prompt=refund_prompt, draft=_draft(SYSTEM_V2, "support-large"), actor=engineer).version
    _ask(sdk)  # a new version alone changes nothing: production still points at v1
    assert catalog.requests[-1]["model"] == "standin-small"

    to_production(refund_prompt, v2)
    _ask(sdk)
    assert catalog.requests[-1]["model"] == "standin-large"
    assert "7 days" in catalog.requests[-1]["messages"][0]["content"]


def test_the_usage_row_carries_the_prompt_version(sdk, catalog, refund_prompt, drain):
    response = sdk.chat.completions.with_raw_response.create(
        model=REF, metadata={"customer": "ACME", "question": "How long?"}, messages=[])
    drain()
    event = UsageEvent.objects.get(request_id=response.headers["x-portal-request-id"])
    assert (event.prompt_name, event.prompt_version) == ("support/refund-policy-qa", 1)
    assert event.model == "support-small" and event.status == "ok"


def test_a_missing_variable_is_a_400_naming_it_and_unknown_references_are_model_not_found(sdk, catalog,
                                                                                        refund_prompt, other_team):
    with pytest.raises(openai.BadRequestError, match="question") as caught:
        sdk.chat.completions.create(model=REF, messages=[], metadata={"customer": "ACME"})
    assert caught.value.body["param"] == "metadata.question"

    prompt_create(team=other_team, name="search/secret", kind="chat", draft=_draft(SYSTEM_V1, "support-small"))
    for model in ("prompt:support/nope@production", "prompt:support/refund-policy-qa@canary",
                  "prompt:search/secret@latest"):  # no such prompt, no such label, another team's prompt
        with pytest.raises(openai.NotFoundError) as caught:
            sdk.chat.completions.create(model=model, messages=[], metadata={"customer": "A", "question": "Q"})
        assert caught.value.code == "model_not_found"
    assert not catalog.requests  # nothing reached the upstream


def test_the_keys_allowed_aliases_apply_to_the_prompts_model(gateway_url, gateway_key, catalog, refund_prompt):
    _key, secret = gateway_key(allowed_aliases=["support-large"])
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError, match="support-small"):
        _ask(sdk)
    assert "prompt:support/refund-policy-qa@production" not in {m.id for m in sdk.models.list()}


def test_a_killed_prompt_is_refused_with_423_and_the_reason(sdk, catalog, refund_prompt, team, drain):
    use_case = UseCase.objects.create(team=team, title="Refund helper", state=State.ACTIVE,
                                      expires_at=timezone.now() + timedelta(days=30))
    UseCasePrompt.objects.create(use_case=use_case, prompt=refund_prompt)
    assert _ask(sdk).choices

    UseCase.objects.filter(pk=use_case.pk).update(state=State.SUSPENDED)  # as the workflow moves states…
    forget_prompt_status(use_case.pk)  # …and drops the cached status after commit
    with pytest.raises(openai.APIStatusError) as caught:
        _ask(sdk)
    assert caught.value.status_code == 423 and "Refund helper" in caught.value.message
    drain()
    refused = UsageEvent.objects.get(status="refused")
    assert refused.prompt_version == 1 and refused.error_type == "prompt_not_served"


@pytest.fixture
def async_thread_connection():
    """The catalog reads made through sync_to_async run on asgiref's one thread: close its connection after."""
    yield
    asyncio.run(sync_to_async(connections.close_all)())


def test_a_warm_reference_is_served_from_the_process_and_a_label_move_rebuilds_it(transactional_db, refund_prompt,
                                                                                  gateway_key, engineer,
                                                                                  to_production, monkeypatch,
                                                                                  async_thread_connection):
    key, _secret = gateway_key()
    refs, info = prompt_ref.PromptRefs(), KeyInfo.of(key)

    def request():
        return {"model": REF, "messages": [], "metadata": {"customer": "ACME", "question": "How long?"}}

    def catalog_read(*args, **kwargs):
        raise AssertionError("a warm reference must not go back to the catalog (Redis payload or PostgreSQL)")

    asyncio.run(refs.prepare(request(), info))  # cold: through the catalog's resolve path
    with monkeypatch.context() as patched:
        patched.setattr(prompt_ref, "resolve_cached", catalog_read)
        warm = request()
        assert asyncio.run(refs.prepare(warm, info)).version_number == 1
        assert warm["model"] == "support-small"
    v2 = version_create(prompt=refund_prompt, draft=_draft(SYSTEM_V2, "support-large"), actor=engineer).version
    to_production(refund_prompt, v2)  # moves the prompt's stamp after commit
    moved = request()
    assert asyncio.run(refs.prepare(moved, info)).version_number == 2 and moved["model"] == "support-large"


# -- the version's response-cache setting (ADR 0099: the portal's own calls opt in by it; ADR 0082: so do these) --
def _exact_version(prompt, engineer, to_production, **config):
    """A temperature-0 version of the refund prompt (cacheable if it opts in), moved to production."""
    draft = Draft(kind="chat", messages=_draft(SYSTEM_V1, "support-small").messages,
                  config={"model": "support-small", "temperature": 0, **config})
    version = version_create(prompt=prompt, draft=draft, actor=engineer).version
    to_production(prompt, version)
    return version


def test_a_version_that_opts_in_is_cached_for_prompt_references_on_any_key_and_shared_with_the_playground(
        sdk, catalog, refund_prompt, engineer, to_production, drain, settings):
    from apps.core import redis as portal_redis  # why: only this test looks at the cache's entries
    from tests.factories import PriceFactory  # why: a priced model, so the hit has a saving

    for name in portal_redis.client().scan_iter(portal_redis.key("gateway", "cache", refund_prompt.team_id, "*")):
        portal_redis.client().delete(name)
    PriceFactory(model_name="standin-small", input_per_mtok="2.50", output_per_mtok="10.00")
    version = _exact_version(refund_prompt, engineer, to_production, cache={"ttl_seconds": 120})
    ask = sdk.chat.completions.with_raw_response.create
    body = {"model": REF, "messages": [], "metadata": {"customer": "ACME", "question": "How long?"}}
    calls = catalog.stats()["calls"]

    first, again = ask(**body), ask(**body)
    skipped = ask(**body, extra_headers={"X-Portal-Cache": "no-store"})  # the request's opt-out wins

    assert [r.headers["x-portal-cache"] for r in (first, again, skipped)] == ["miss", "hit", "miss"]
    assert catalog.stats()["calls"] - calls == 2  # the hit never reached the upstream
    entry = next(portal_redis.client().scan_iter(portal_redis.key("gateway", "cache", refund_prompt.team_id, "*")))
    assert 0 < portal_redis.client().ttl(entry) <= 120  # the version's TTL, not the key's or the default
    drain()
    paid = UsageEvent.objects.get(request_id=first.headers["x-portal-request-id"])
    hit = UsageEvent.objects.get(request_id=again.headers["x-portal-request-id"])
    assert hit.cache_hit and hit.cost == 0 and paid.cost > 0 and hit.cache_saving == paid.cost
    assert (hit.source, hit.prompt_name, hit.prompt_version) == ("gateway", refund_prompt.name, version.number)

    # One call path, one rule: the playground's run of the same version and inputs is answered from that entry.
    prepared = prepare_runs(versions=[version], models=["support-small"], user=engineer,
                            inputs={"customer": "ACME", "question": "How long?"})
    run = execute_run(prepared.runs[0])
    assert run.status == "ok" and catalog.stats()["calls"] - calls == 2
    portal_hit = UsageEvent.objects.get(request_id=run.request_id)
    assert (portal_hit.source, portal_hit.cache_hit, portal_hit.cache_saving) == ("playground", True, paid.cost)


def test_a_version_without_cache_is_never_cached_whatever_the_key_or_the_request_says(
        gateway_url, gateway_key, catalog, refund_prompt, engineer, to_production, gateway_server, settings):
    settings.GATEWAY_ADMISSION_TTL_SECONDS = 0
    gateway_server[1].prompts.clear()
    _exact_version(refund_prompt, engineer, to_production)  # temperature 0, no "cache" in its config
    _key, secret = gateway_key(cache_enabled=True)
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    calls = catalog.stats()["calls"]
    answers = [sdk.chat.completions.with_raw_response.create(model=REF, messages=[], extra_headers=headers,
                                                             metadata={"customer": "ACME", "question": "How long?"})
               for headers in (None, None, {"X-Portal-Cache": "use"})]
    assert [a.headers["x-portal-cache"] for a in answers] == ["miss"] * 3
    assert catalog.stats()["calls"] - calls == 3
