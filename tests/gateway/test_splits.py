"""Online experiments at the front door (apps/gateway/splits.py), with the official SDK against the stand-in
upstream: a running experiment splits `prompt:NAME@production` between its arms, sticky per end user or
tenant, each usage row carries its arm, and the kill switch sends the next request of every process back to
the control."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import connections
from openai import OpenAI

from apps.costs.models import UsageEvent
from apps.experiments import services
from apps.experiments.models import Experiment
from apps.gateway import prompt_ref, splits
from apps.gateway.keys import KeyInfo
from apps.prompts.services import (
    label_set,
    promotion_request_expedite,
    promotion_request_open,
    prompt_create,
    version_create,
)
from tests.gateway.test_prompt_ref import _draft, catalog  # noqa: F401 - the same two stand-in models (fixture)
from tests.gateway.test_round_trips import round_trips

REF = "prompt:support/refund-policy-qa@production"
SALT = "0123456789abcdef"
USERS = [f"user-{n}" for n in range(12)]


@pytest.fixture
def refund_prompt(team, engineer, admin_user):
    """v1 on production (support-small), v2 on staging (support-large)."""
    cache.clear()
    prompt = prompt_create(team=team, name="support/refund-policy-qa", kind="chat", actor=engineer,
                           draft=_draft("Refunds take 14 days.", "support-small"), commit_message="first")
    request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer)
    promotion_request_expedite(request=request, user=admin_user, reason="First release of the refund answers.")
    v2 = version_create(prompt=prompt, draft=_draft("Refunds take 7 days.", "support-large"), actor=engineer).version
    label_set(prompt=prompt, label="staging", version=v2, actor=engineer)
    return prompt


def _experiment(prompt, engineer, arms, unit="user") -> Experiment:
    experiment = services.experiment_create(actor=engineer, prompt=prompt, name="Shorter refund window", unit=unit,
                                            arms=arms)
    Experiment.objects.filter(pk=experiment.pk).update(salt=SALT)  # a known salt: the expected arms are computable
    return services.experiment_start(experiment=experiment, actor=engineer)


@pytest.fixture
def sdk(gateway_url, gateway_server, gateway_key, settings):
    settings.GATEWAY_ADMISSION_TTL_SECONDS = 0
    gateway_server[1].prompts.clear()
    _key, secret = gateway_key()
    return OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)


def _ask(sdk, **extra):
    response = sdk.chat.completions.with_raw_response.create(
        model=REF, messages=[], metadata={"question": "How long do refunds take?"}, **extra)
    return response.headers["x-portal-request-id"]


@pytest.fixture
def async_thread_connection():
    yield
    asyncio.run(sync_to_async(connections.close_all)())


def test_users_stick_to_arms_rows_carry_them_the_kill_switch_returns_all_to_control_and_tenants_split_models(
        sdk, catalog, refund_prompt, engineer, gateway_key, drain, async_thread_connection, monkeypatch):  # noqa: F811
    experiment = _experiment(refund_prompt, engineer, [{"key": "control", "weight": 50, "label": "production"},
                                                       {"key": "candidate", "weight": 50, "label": "staging"}])
    arms = (splits.Arm("control", 50, "production"), splits.Arm("candidate", 50, "staging"))
    expected = {user: splits.assign(arms, SALT, user).key for user in USERS}
    assert set(expected.values()) == {"control", "candidate"}
    upstream = {"control": "standin-small", "candidate": "standin-large"}

    request_arms = {}
    unit_of_request = {}
    for user in USERS + USERS:  # twice each: sticky
        unit_of_request[rid := _ask(sdk, user=user)] = user
        request_arms[rid] = expected[user]
        assert catalog.requests[-1]["model"] == upstream[expected[user]]
    unassigned = _ask(sdk)  # no end user: the control, not counted in the experiment
    assert catalog.requests[-1]["model"] == "standin-small"
    fewest = {}
    for arm in ("control", "candidate"):  # warm: the arm costs no Redis round trip of its own
        counts = []
        for _ in range(3):  # the fewest of three: a once-a-second stamp re-check may land in any one request
            with round_trips(monkeypatch) as trips:
                request_arms[_ask(sdk, user=next(u for u in USERS if expected[u] == arm))] = arm
            counts.append(len(trips))
        fewest[arm] = min(counts)
    assert fewest["candidate"] == fewest["control"]

    # A second gateway process, warm before the kill.
    key, _secret = gateway_key(name="second-process")
    other, info = prompt_ref.PromptRefs(), KeyInfo.of(key)

    def request_for(user):
        return {"model": REF, "messages": [], "user": user, "metadata": {"question": "How long?"}}

    candidate_user = next(user for user in USERS if expected[user] == "candidate")
    assert asyncio.run(other.prepare(request_for(candidate_user), info)).arm == "candidate"

    drain()
    rows = {e.request_id: e for e in UsageEvent.objects.filter(request_id__in=[*request_arms, unassigned])}
    assert {rid: (rows[rid].experiment_id, rows[rid].experiment_arm) for rid in request_arms} == \
        {rid: (experiment.pk, arm) for rid, arm in request_arms.items()}
    assert (rows[unassigned].experiment_id, rows[unassigned].experiment_arm) == (None, "")
    # the unit the split was sticky on, keyed-hashed, for the per-unit analysis: never the raw end user
    assert {rid: rows[rid].experiment_unit for rid in unit_of_request} == \
        {rid: splits.unit_key(experiment.pk, user) for rid, user in unit_of_request.items()}
    assert rows[unassigned].experiment_unit == "" and not set(USERS) & {r.experiment_unit for r in rows.values()}
    assert {rows[rid].prompt_version for rid, arm in request_arms.items() if arm == "candidate"} == {2}

    services.experiment_kill(experiment=experiment, actor=engineer, reason="The candidate quotes the wrong window.")
    after = [_ask(sdk, user=user) for user in USERS]
    assert {sent["model"] for sent in catalog.requests[-len(USERS):]} == {"standin-small"}
    target = asyncio.run(other.prepare(request_for(candidate_user), info))  # the other process: control at once
    assert (target.arm, target.experiment_id, target.version_number) == ("", None, 1)
    drain()
    assert set(UsageEvent.objects.filter(request_id__in=after).values_list("experiment_id", flat=True)) == {None}

    _a_model_arm_split_by_tenant_calls_the_other_model_with_the_same_version(sdk, catalog, refund_prompt, engineer,
                                                                             drain)


def _a_model_arm_split_by_tenant_calls_the_other_model_with_the_same_version(sdk, catalog, refund_prompt,  # noqa: F811
                                                                             engineer, drain):
    """(In the same test: a gateway test's database costs seconds to set up and flush.)"""
    experiment = _experiment(refund_prompt, engineer, [{"key": "control", "weight": 50, "label": "production"},
                                                       {"key": "large", "weight": 50, "model": "support-large"}],
                             unit="tenant")
    arms = (splits.Arm("control", 50, "production"), splits.Arm("large", 50, "production", model="support-large"))
    tenants = [f"tenant-{n}" for n in range(8)]
    expected = {t: splits.assign(arms, SALT, t).key for t in tenants}
    ids = {}
    for tenant in tenants:
        ids[_ask(sdk, extra_headers={"X-Portal-Tenant": tenant})] = expected[tenant]
        sent = catalog.requests[-1]
        assert sent["model"] == ("standin-large" if expected[tenant] == "large" else "standin-small")
        assert "14 days" in sent["messages"][0]["content"]  # the production version either way
    drain()
    rows = UsageEvent.objects.filter(request_id__in=ids)
    assert {(r.request_id, r.experiment_arm, r.experiment_id) for r in rows} == \
        {(rid, arm, experiment.pk) for rid, arm in ids.items()}
