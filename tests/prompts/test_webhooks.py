"""Team webhooks: queued on commit, HMAC-signed, retried with backoff, logged."""

import json

import httpx
import pytest
from django.core.exceptions import ValidationError

from apps.prompts import webhooks
from apps.prompts.models import DeliveryStatus, Webhook, WebhookDelivery
from apps.prompts.services import label_set, version_create
from apps.prompts.tasks import webhook_deliver_task
from apps.prompts.webhooks import DeliveryFailed, webhook_create, webhook_delivery_attempt
from tests.prompts.conftest import text_draft


@pytest.fixture
def hook(team, owner):
    webhook, secret = webhook_create(team=team, url="https://ci.example.com/hooks/prompts",
                                     events=["version.created", "label.moved"], actor=owner)
    return webhook, secret


@pytest.fixture
def transport(monkeypatch):
    """Route the delivery's HTTP client through a MockTransport; `transport.respond` sets the answer."""
    state = {"requests": [], "respond": lambda request: httpx.Response(200, text="ok")}

    def handler(request):
        state["requests"].append(request)
        return state["respond"](request)

    monkeypatch.setattr(webhooks, "client_factory", lambda: httpx.Client(transport=httpx.MockTransport(handler)))
    return state


def test_the_secret_is_stored_encrypted_and_returned_once(hook):
    webhook, secret = hook
    assert secret.startswith("whsec_")
    stored = Webhook.objects.get(pk=webhook.pk).secret_encrypted
    assert secret not in stored and stored


def test_bad_webhooks_are_refused_field_by_field(team, owner):
    with pytest.raises(ValidationError) as exc:
        webhook_create(team=team, url="ftp://x", events=["prompt.deleted"], actor=owner)
    assert set(exc.value.message_dict) == {"url", "events"}
    with pytest.raises(ValidationError) as exc:
        webhook_create(team=team, url="https://x.example.com", events=["prompt.deleted"], actor=owner)
    assert set(exc.value.message_dict) == {"events"}


def test_events_are_queued_only_when_the_transaction_commits(hook, make_prompt, engineer, _no_broker,
                                                            django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        prompt = make_prompt()
    assert _no_broker == []  # nothing sent before commit
    deliveries = list(WebhookDelivery.objects.order_by("id"))
    assert [d.event for d in deliveries] == ["version.created"]
    for callback in callbacks:
        callback()
    assert (deliveries[0].pk,) in _no_broker
    with django_capture_on_commit_callbacks(execute=True):
        label_set(prompt=prompt, label="staging", version=prompt.versions.get(), actor=engineer, reason="qa")
    moved = WebhookDelivery.objects.filter(event="label.moved").get()
    assert moved.payload["label"] == "staging" and moved.payload["to_version"] == 1
    assert moved.payload["reason"] == "qa" and moved.payload["prompt"] == prompt.name


def test_nothing_is_queued_when_the_transaction_rolls_back(hook, make_prompt, _no_broker,
                                                          django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ValidationError):
        make_prompt(template="{{ broken }")
    assert _no_broker == [] and not WebhookDelivery.objects.exists()


def test_a_delivery_is_signed_over_the_raw_body(hook, make_prompt, transport):
    webhook, secret = hook
    make_prompt()
    delivery = WebhookDelivery.objects.get()
    webhook_delivery_attempt(delivery.pk)
    sent = transport["requests"][0]
    body = sent.content
    timestamp = int(sent.headers["X-Portal-Timestamp"])
    assert sent.headers["X-Portal-Signature"] == webhooks.sign(secret, timestamp, body)
    assert webhooks.verify(secret, timestamp, body, sent.headers["X-Portal-Signature"])
    assert not webhooks.verify("whsec_wrong", timestamp, body, sent.headers["X-Portal-Signature"])
    assert sent.headers["X-Portal-Event"] == "version.created"
    assert json.loads(body)["prompt"] == "support/triage-summary"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == (DeliveryStatus.DELIVERED, 1, 200)


def test_a_server_error_is_retried_then_given_up(hook, make_prompt, transport):
    transport["respond"] = lambda request: httpx.Response(503, text="busy")
    make_prompt()
    delivery = WebhookDelivery.objects.get()
    with pytest.raises(DeliveryFailed):
        webhook_delivery_attempt(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.error) == (DeliveryStatus.RETRYING, 1, "HTTP 503")
    webhook_delivery_attempt(delivery.pk, final=True)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 2)


def test_a_connection_error_is_retried(hook, make_prompt, transport):
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    transport["respond"] = refuse
    make_prompt()
    delivery = WebhookDelivery.objects.get()
    with pytest.raises(DeliveryFailed):
        webhook_delivery_attempt(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.RETRYING and "ConnectError" in delivery.error


def test_a_refusal_is_not_retried(hook, make_prompt, transport):
    transport["respond"] = lambda request: httpx.Response(410, text="gone")
    make_prompt()
    delivery = WebhookDelivery.objects.get()
    webhook_delivery_attempt(delivery.pk)  # no exception: no retry
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.response_status == 410


def test_a_delivered_or_deleted_delivery_is_left_alone(hook, make_prompt, transport):
    make_prompt()
    delivery = WebhookDelivery.objects.get()
    webhook_delivery_attempt(delivery.pk)
    webhook_delivery_attempt(delivery.pk)
    assert len(transport["requests"]) == 1
    assert webhook_delivery_attempt(999_999) is None


def test_the_task_retries_with_backoff_and_jitter():
    task = webhook_deliver_task
    assert DeliveryFailed in task.autoretry_for
    assert task.retry_backoff and task.retry_jitter and task.max_retries == webhooks.MAX_ATTEMPTS - 1


def test_the_task_runs_the_delivery(hook, make_prompt, transport):
    make_prompt()
    delivery = WebhookDelivery.objects.get()
    webhook_deliver_task.apply(args=[delivery.pk])
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED


def test_only_subscribed_events_are_sent(team, owner, make_prompt, engineer):
    webhook_create(team=team, url="https://x.example.com/h", events=["label.moved"], actor=owner)
    prompt = make_prompt()
    assert not WebhookDelivery.objects.exists()
    version_create(prompt=prompt, draft=text_draft("Two {{ ticket }}"), actor=engineer)
    assert not WebhookDelivery.objects.exists()  # latest moves, but version.created covers it
    label_set(prompt=prompt, label="staging", version=prompt.versions.get(number=2), actor=engineer)
    assert WebhookDelivery.objects.get().event == "label.moved"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/hook", "http://localhost/hook", "http://10.0.0.5/hook",
                                 "http://169.254.169.254/latest/meta-data/", "http://[::1]/hook",
                                 "http://[::ffff:192.168.1.1]/hook", "http://api.localhost/hook"])
def test_a_webhook_into_the_network_is_refused_when_saved(team, owner, url):
    with pytest.raises(ValidationError) as exc:
        webhook_create(team=team, url=url, events=["label.moved"], actor=owner)
    assert "inside the network" in exc.value.message_dict["url"][0]
    assert not Webhook.objects.exists()


def test_private_receivers_are_allowed_when_the_setting_says_so(team, owner, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    webhook, _ = webhook_create(team=team, url="http://127.0.0.1:9999/hook", events=["label.moved"], actor=owner)
    assert webhook.pk


def test_a_name_that_resolves_inside_the_network_fails_the_delivery_without_retry(team, owner, monkeypatch):
    """`localhost.example` passes the save-time check (a name); the delivery resolves it and refuses."""
    webhook, _ = webhook_create(team=team, url="http://receiver.example/hook", events=["label.moved"], actor=owner)
    monkeypatch.setattr(webhooks.socket, "getaddrinfo",
                        lambda host, *a, **k: [(2, 1, 6, "", ("10.1.2.3", 0))])
    delivery = WebhookDelivery.objects.create(webhook=webhook, event="label.moved", payload={"x": 1})
    result = webhook_delivery_attempt(delivery.pk)  # the real client: no mock transport
    assert result.status == DeliveryStatus.FAILED
    assert result.attempts == 1 and "receiver.example is a private" in result.error


def test_public_addresses_are_not_refused():
    assert not webhooks.private_destination("93.184.216.34")
    assert not webhooks.private_destination("2606:2800:220:1:248:1893:25c8:1946")
    assert webhooks.private_destination("192.168.0.10") and webhooks.private_destination("fd00::1")
