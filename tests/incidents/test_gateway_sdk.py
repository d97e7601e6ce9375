"""A mitigation end to end through the real gateway with the official openai SDK: served before, refused after
(feature off: 423 with the message the product shows; rate limit: 429), served again after undo. No waiting:
apply and undo move the gateway stamp on commit, so the next request is decided anew."""

import openai
import pytest
from openai import OpenAI

from apps.gateway.asgi import Gateway
from apps.incidents import mitigations, selectors
from tests.gateway.conftest import serving

QUESTION = [{"role": "user", "content": "Question: how long do refunds take?\n\n[1] Refunds take 14 days."}]


def _ask(sdk):
    return sdk.chat.completions.create(model="chat", messages=QUESTION)


def test_feature_off_refuses_with_423_and_undo_serves_again(gateway_url, local_catalog, gateway_key, incident,
                                                            engineer, drain):
    key, secret = gateway_key(feature="refund-bot")
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    assert _ask(sdk).choices[0].message.content

    mitigation = mitigations.mitigation_apply(incident=incident, actor=engineer, kind="feature_off",
                                              target={"scope": "feature", "team_id": key.team_id,
                                                      "feature": "refund-bot"},
                                              params={"message": "Refund answers are paused for now."})
    for _ in range(2):
        with pytest.raises(openai.APIStatusError) as caught:
            _ask(sdk)
        assert caught.value.status_code == 423
        assert caught.value.body["message"].startswith("Refund answers are paused for now.")
        assert caught.value.body["code"] == mitigations.GUARD_KEY
    drain()
    assert selectors.effects_of([mitigation])[mitigation.pk].count == 2

    mitigations.mitigation_undo(mitigation=mitigation, actor=engineer)
    assert _ask(sdk).choices[0].message.content


def test_rate_limit_refuses_with_429_and_undo_restores(gateway_url, local_catalog, gateway_key, incident, engineer):
    key, secret = gateway_key(requests_per_minute=1000)
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    assert _ask(sdk).choices
    mitigation = mitigations.mitigation_apply(incident=incident, actor=engineer, kind="rate_limit",
                                              target={"scope": "key", "key_id": key.pk},
                                              params={"requests_per_minute": 1})
    with pytest.raises(openai.RateLimitError):  # the minute's window already holds the first request
        _ask(sdk)
    mitigations.mitigation_undo(mitigation=mitigation, actor=engineer)
    assert _ask(sdk).choices


@pytest.fixture
def second_gateway(gateway_url):
    """Another gateway app with its own key and admission caches, as a second gateway process has."""
    with serving(Gateway()) as base_url:
        yield base_url


def test_every_gateway_obeys_the_switch_on_its_next_request(gateway_url, second_gateway, local_catalog,
                                                            gateway_key, incident, engineer, settings):
    settings.GATEWAY_ADMISSION_TTL_SECONDS = 3600  # only the stamp can make a gateway ask again
    key, secret = gateway_key()
    sdks = [OpenAI(base_url=url, api_key=secret, max_retries=0) for url in (gateway_url, second_gateway)]
    for sdk in sdks:
        assert _ask(sdk).choices  # each caches "admitted" for this key

    mitigation = mitigations.mitigation_apply(incident=incident, actor=engineer, kind="feature_off",
                                              target={"scope": "key", "key_id": key.pk})
    for sdk in sdks:
        with pytest.raises(openai.APIStatusError) as caught:
            _ask(sdk)
        assert caught.value.status_code == 423
    mitigations.mitigation_undo(mitigation=mitigation, actor=engineer)
    for sdk in sdks:
        assert _ask(sdk).choices
