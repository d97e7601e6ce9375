"""The paging webhook, against a real local HTTP receiver: a Sev1 declared with a Sev1 webhook set up sends one
HMAC-signed POST after the commit; a 5xx is retried (Celery's retry through the one retry policy); private
addresses are refused unless allowed; the URL is checked when it is set up."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError

from apps.audit.models import AuditEvent
from apps.incidents import paging
from apps.incidents.models import PagingDelivery, PagingWebhook
from apps.incidents.tasks import paging_deliver_task
from apps.prompts import webhooks


@pytest.fixture
def receiver():
    """A local receiver: answers each POST with the next status of `statuses` (then 200) and keeps what it got."""
    state = {"statuses": [], "got": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server spelling
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state["got"].append((dict(self.headers), body))
            self.send_response(state["statuses"].pop(0) if state["statuses"] else 200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_port}/page"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def sev1_hook(receiver, settings, admin_user):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    webhook = PagingWebhook(severity=1, url=receiver["url"], description="on-call")
    secret = paging.paging_webhook_save(webhook=webhook, actor=admin_user)
    return webhook, secret


def test_a_sev1_sends_one_signed_post_and_a_5xx_is_retried(declare, receiver, sev1_hook):
    webhook, secret = sev1_hook
    receiver["statuses"] = [503]
    declare(severity=3)  # no Sev3 webhook: nothing sent
    incident = declare(severity=1, title="Provider down for every EU request")
    delivery = PagingDelivery.objects.get()  # one, sent after the commit by the task below
    assert delivery.webhook == webhook and delivery.incident == incident and delivery.status == "pending"

    result = paging_deliver_task.apply(args=[delivery.pk])  # eager: Celery's retries run at once
    assert result.successful()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("delivered", 2, 200)
    headers, body = receiver["got"][-1]
    assert len(receiver["got"]) == 2 and headers["X-Portal-Event"] == "incident.paged"
    assert webhooks.verify(secret, int(headers["X-Portal-Timestamp"]), body, headers["X-Portal-Signature"])
    assert not webhooks.verify("whsec_wrong", int(headers["X-Portal-Timestamp"]), body,
                               headers["X-Portal-Signature"])
    sent = json.loads(body)["incident"]
    assert (sent["reference"], sent["severity"], sent["title"]) == (incident.reference, 1, incident.title)


def test_a_4xx_is_not_retried(declare, receiver, sev1_hook):
    receiver["statuses"] = [410]
    declare(severity=1)
    delivery = paging.paging_delivery_attempt(PagingDelivery.objects.get().pk)
    assert (delivery.status, delivery.attempts) == ("failed", 1) and "not retried" in delivery.error


def test_a_private_receiver_is_refused_without_retrying(declare, receiver, sev1_hook, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    declare(severity=1)
    delivery = paging.paging_delivery_attempt(PagingDelivery.objects.get().pk)
    assert delivery.status == "failed" and delivery.error.startswith("Refused") and receiver["got"] == []


def test_the_url_is_checked_when_a_webhook_is_set_up(admin_user, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    for url in ("ftp://pager.example.com/x", "http://169.254.169.254/latest", "http://localhost:8080/"):
        with pytest.raises(ValidationError):
            paging.paging_webhook_save(webhook=PagingWebhook(severity=1, url=url), actor=admin_user)
    assert not PagingWebhook.objects.exists()
    secret = paging.paging_webhook_save(webhook=PagingWebhook(severity=2, url="https://pager.example.com/hook"),
                                        actor=admin_user)
    assert secret.startswith("whsec_") and secret not in PagingWebhook.objects.get().secret_encrypted
    assert AuditEvent.objects.filter(action="incident.paging_webhook_save").count() == 1
