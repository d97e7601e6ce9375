"""A campaign on a gateway key goes through the real `/v1/` front door (ADR 0119): with a twin key minted for the
run (the target key's exact policy, its own secret, revoked at the end), so the key's guardrails and limits apply;
a guardrail block is a defended attack naming the guardrail; a key limit is "not run", never scored; the gateway
records each call once and the runner none. The front door's reading of errors is checked without a server too."""

from __future__ import annotations

import asyncio
import socket

import httpx
import openai
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.costs.models import UsageEvent
from apps.gateway.models import GatewayKey
from apps.gateway.services import gateway_key_guardrails_set, gateway_key_revoke
from apps.guardrails import scan_injection
from apps.redteam import front_door, runner, services
from apps.redteam.models import Attack, AttackStatus, CampaignKey, CampaignStatus
from tests.redteam.conftest import PROBES, expand, expected_successes

STRATEGIES = ["plain", "base64", "document"]


@pytest.fixture
def through_gateway(gateway_url, standin_chat, settings):
    settings.GATEWAY_ADMISSION_TTL_SECONDS = 0
    settings.GATEWAY_BASE_URL = gateway_url
    return gateway_url


def launch_on_key(key, engineer, **kwargs):
    kwargs.setdefault("concurrency", 4)
    return services.campaign_create(actor=engineer, name="front door", model="rt-chat", strategies=STRATEGIES,
                                    library_version="test-v1", gateway_key=key,
                                    system_prompt="You help Acme customers. Be brief.", start=False, **kwargs)


def test_an_input_guardrail_blocks_attacks_at_the_front_door_and_they_count_as_defended(
        through_gateway, gateway_key, owner, engineer, drain, client):
    key, _secret = gateway_key(allowed_aliases=["rt-chat"])
    gateway_key_guardrails_set(key=key, actor=owner, guard_injection="block")

    campaign = runner.campaign_execute_inline(launch_on_key(key, engineer).pk)

    attacks = expand(PROBES, STRATEGIES, 0)
    blocked = {a.key for a in attacks if scan_injection(a.text)}  # the user turn is what the input policy reads
    assert blocked and blocked != {a.key for a in attacks}
    assert campaign.status == CampaignStatus.FINISHED and campaign.errors_count == 0
    rows = {a.key: a for a in Attack.objects.filter(campaign=campaign)}
    for name in blocked:
        assert rows[name].success is False
        assert rows[name].evidence["decided_by"] == "guardrail"
        assert "prompt injection" in rows[name].evidence["guardrail"]
    assert {k for k, a in rows.items() if a.success} == expected_successes(attacks) - blocked
    assert campaign.summary["overall"]["total"] == len(attacks)
    assert campaign.summary["overall"]["blocked_by_gateway"] == len(blocked)
    client.force_login(engineer)
    page = client.get(campaign.get_absolute_url()).content.decode()
    assert f"{len(blocked)} blocked by the gateway" in page and "front door" in page

    # One usage event per attack, all the gateway's (blocked ones refused), under the run's own key; none by the runner.
    assert drain() == len(attacks)
    run_key = CampaignKey.objects.get(campaign=campaign).key
    events = UsageEvent.objects.all()
    assert events.count() == len(attacks)
    assert set(events.values_list("gateway_key_id", flat=True)) == {run_key.pk}
    assert events.filter(status="refused", error_type="content_policy_violation").count() == len(blocked)
    answered = {a.request_id for a in rows.values() if a.evidence["decided_by"] != "guardrail"}
    assert answered <= set(events.values_list("request_id", flat=True))

    # The run key was the target's twin and is revoked; the target key is untouched.
    assert run_key.revoked_at is not None and run_key.key_hash != key.key_hash
    assert (run_key.team_id, run_key.feature, run_key.allowed_aliases, run_key.guard_injection) == \
        (key.team_id, key.feature, key.allowed_aliases, "block")
    assert GatewayKey.objects.get(pk=key.pk).revoked_at is None


def test_a_key_limit_marks_attacks_not_run_and_leaves_them_out_of_the_rate(through_gateway, gateway_key, engineer,
                                                                           monkeypatch, drain):
    monkeypatch.setattr(front_door, "LIMIT_WAIT_SECONDS", 0)  # a day window: never waited for
    key, _secret = gateway_key(requests_per_day=2)

    campaign = runner.campaign_execute_inline(launch_on_key(key, engineer, concurrency=1).pk)

    total = len(expand(PROBES, STRATEGIES, 0))
    not_run = Attack.objects.filter(campaign=campaign, status=AttackStatus.ERROR)
    assert campaign.status == CampaignStatus.FINISHED
    assert not_run.count() == total - 2 and not not_run.filter(success__isnull=False).exists()
    assert all(e.startswith("not run: 429 key_limit") for e in not_run.values_list("error", flat=True))
    assert campaign.summary["overall"]["total"] == 2  # only what was answered is scored
    assert drain() == 3  # two answered and the refusal that closed the run; the rest were never sent


def test_a_revoked_key_cannot_be_the_target_of_a_campaign(gateway_key, owner, engineer, standin_chat):
    key, _secret = gateway_key()
    key = gateway_key_revoke(key=key, actor=owner)
    with pytest.raises(ValidationError, match="revoked"):
        launch_on_key(key, engineer)


def test_the_beat_revokes_run_keys_a_dead_worker_left(gateway_key, engineer, standin_chat, client):
    key, _secret = gateway_key()
    campaign = launch_on_key(key, engineer)
    runner.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    alive, _ = front_door.mint(campaign, runner.inline_owner())
    dead, _ = front_door.mint(campaign, f"inline:{socket.gethostname()}:999999999")
    client.force_login(engineer)
    launch_page = client.get(reverse("redteam:campaign_create")).content.decode()
    assert key.name in launch_page and alive.key.name not in launch_page  # a run's key is no target

    assert runner.run_keys_sweep() == 1
    alive.key.refresh_from_db()
    dead.key.refresh_from_db()
    assert dead.key.revoked_at is not None and alive.key.revoked_at is None


# -- the front door's reading of answers, without a server ------------------------------------------------------

SDK_ERRORS = {400: openai.BadRequestError, 403: openai.PermissionDeniedError, 423: openai.APIStatusError,
              429: openai.RateLimitError, 502: openai.InternalServerError}


def status_error(status: int, code: str, retry_after: str | None = None) -> openai.APIStatusError:
    """What the SDK raises for the gateway's error answer (OpenAI's body: message, type, code)."""
    body = {"message": f"{code} happened", "code": code}
    response = httpx.Response(status, headers={"retry-after": retry_after} if retry_after else {},
                              request=httpx.Request("POST", "http://gw/v1/chat/completions"), json={"error": body})
    return SDK_ERRORS[status](body["message"], response=response, body=body)


@pytest.mark.parametrize(("status", "code", "reading"), [
    (400, "content_policy_violation", front_door.Blocked),
    (429, "key_limit", front_door.NotRun),
    (429, "insufficient_quota", front_door.NotRun),
    (423, "use_case_not_active", front_door.NotRun),
    (429, "upstream_rate_limited", front_door.Retry),
    (502, "upstream_error", front_door.Retry),
    (403, "model_not_allowed", openai.PermissionDeniedError),
])
def test_each_refusal_is_read_as_defended_not_run_retry_or_an_error(status, code, reading):
    assert isinstance(front_door.classify(status_error(status, code)), reading)


def test_a_short_key_limit_holds_every_worker_then_sends_the_attack_again():
    class Completions:
        calls = 0

        async def create(self, **kwargs):
            Completions.calls += 1
            if Completions.calls == 1:
                raise status_error(429, "key_limit", retry_after="0")
            return Raw()

    class Raw:
        headers = {"x-portal-request-id": "req-2"}

        def parse(self):
            message = type("M", (), {"content": "answered"})
            return type("C", (), {"choices": [type("Ch", (), {"message": message})]})

    door = front_door.FrontDoor("pk-gw-secret", alias="chat", max_tokens=10, concurrency=1, base_url="http://gw/v1")
    completions = type("Cs", (), {"with_raw_response": Completions()})
    door.client = type("Client", (), {"chat": type("Chat", (), {"completions": completions})})
    answer = asyncio.run(door.call([{"role": "user", "content": "hi"}]))
    assert (answer.text, answer.request_id, Completions.calls) == ("answered", "req-2", 2)
    assert door.hold_until > 0 and not door.closed
    assert "pk-gw-secret" not in repr(door)
