"""The gateway answers its own Prometheus scrape: requests by endpoint, status and code, and its latency."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

QUESTION = [{"role": "user", "content": "Question: how long do refunds take?\n\n[1] Refunds take 14 days."}]


def scrape(gateway_url: str, **headers) -> dict:
    answer = httpx.get(gateway_url.removesuffix("/v1") + "/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def requests(samples: dict, endpoint: str, status: str, code: str) -> float:
    labels = (("code", code), ("endpoint", endpoint), ("status", status))
    return samples.get(("portal_gateway_requests_total", labels), 0.0)


def test_answers_and_refusals_are_counted_by_endpoint_status_and_code(gateway_url, local_catalog, gateway_key, drain):
    _key, secret = gateway_key()
    before = scrape(gateway_url)

    OpenAI(base_url=gateway_url, api_key=secret, max_retries=0).chat.completions.create(
        model="chat", messages=QUESTION)
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=gateway_url, api_key="pk-gw-00000000-notakey", max_retries=0).chat.completions.create(
            model="chat", messages=QUESTION)

    after = scrape(gateway_url)
    chat = "/v1/chat/completions"
    assert requests(after, chat, "200", "ok") - requests(before, chat, "200", "ok") == 1
    assert requests(after, chat, "401", "invalid_api_key") - requests(before, chat, "401", "invalid_api_key") == 1
    count = ("portal_gateway_request_seconds_count", (("endpoint", chat),))
    assert after[count] - before.get(count, 0.0) == 2
    drain()


def test_the_scrape_needs_the_metrics_token_when_one_is_set(gateway_url, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    metrics_url = gateway_url.removesuffix("/v1") + "/metrics"
    assert httpx.get(metrics_url).status_code == 401
    assert httpx.get(metrics_url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    allowed = httpx.get(metrics_url, headers={"Authorization": "Bearer scrape-secret"})
    assert allowed.status_code == 200 and "# TYPE portal_gateway_requests_total counter" in allowed.text
