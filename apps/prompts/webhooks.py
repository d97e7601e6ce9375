"""Team webhooks: on `version.created` and `label.moved`, an HMAC-signed JSON POST, retried by Celery.

Signature: `X-Portal-Signature: sha256=<hex>` = HMAC-SHA256(secret, f"{timestamp}.".encode() + raw body),
with the timestamp (unix seconds) in `X-Portal-Timestamp`. Receivers recompute it over the raw body and
refuse timestamps older than a few minutes (replays). Secrets are Fernet-encrypted at rest (apps.llm.crypto).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.tasks import task_queue
from apps.llm.crypto import decrypt_secret, encrypt_secret
from apps.prompts.models import DeliveryStatus, Webhook, WebhookDelivery, WebhookEvent

SIGNATURE_HEADER = "X-Portal-Signature"
TIMESTAMP_HEADER = "X-Portal-Timestamp"
EVENT_HEADER = "X-Portal-Event"
DELIVERY_HEADER = "X-Portal-Delivery"
TIMEOUT_SECONDS = 10.0
MAX_ATTEMPTS = 7  # the first try and six retries (backoff 1s, 2s, 4s … capped, with jitter)
_PERMANENT = range(400, 500)
_RETRYABLE_4XX = {408, 409, 425, 429}


class DeliveryFailed(Exception):
    """A transient failure: the task retries it with backoff."""


class DestinationRefused(httpx.TransportError):
    """The receiver's address is on a private, loopback, link-local or reserved network: never retried."""


def _blocked_address(text: str) -> bool:
    address = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return (address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
            or address.is_reserved or address.is_unspecified)


def private_destination(host: str) -> bool:
    """True when `host` (an IP literal or a name) is, or resolves to, an address inside the network.

    A webhook is set up by any team owner and is sent from inside the portal's network: without this, a
    URL like http://169.254.169.254/ or http://db:5432/ would make the portal probe its own neighbours.
    """
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return _blocked_address(host)
    except ValueError:
        pass  # a name: check every address it resolves to
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False  # unresolvable: the request fails on its own (and is retried)
    return any(_blocked_address(info[4][0]) for info in infos)


class _PublicOnlyTransport(httpx.HTTPTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS and private_destination(request.url.host):
            raise DestinationRefused(
                f"{request.url.host} is a private, loopback or link-local address; webhooks go to public "
                "receivers only (WEBHOOKS_ALLOW_PRIVATE_NETWORKS allows them).", request=request)
        return super().handle_request(request)


def _default_client() -> httpx.Client:
    # Redirects are not followed: a public receiver could otherwise bounce the POST inside the network.
    return httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False, transport=_PublicOnlyTransport())


# The HTTP client the delivery uses; tests inject an httpx.MockTransport through this.
client_factory: Callable[[], httpx.Client] = _default_client


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: int, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def _literal_private_host(host: str) -> bool:
    """At creation only literals and localhost are judged; names are checked when each delivery resolves."""
    try:
        return host in ("localhost",) or host.endswith(".localhost") or _blocked_address(host.strip("[]"))
    except ValueError:
        return False


def url_problem(url: str) -> str | None:
    """What is wrong with a receiver's URL at creation (None: nothing). Names are judged again at each delivery."""
    parsed = urlparse(url or "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return "Give an http(s) URL, e.g. https://ci.example.com/hooks/prompts."
    if len(url) > 500:
        return "Keep the URL under 500 characters."
    if not settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS and _literal_private_host(parsed.hostname or ""):
        return ("This URL points inside the network (a private, loopback or link-local address); "
                "give a public receiver.")
    return None


@transaction.atomic
def webhook_create(*, team, url: str, events: list[str], description: str = "", actor=None) -> tuple[Webhook, str]:
    """A new webhook and its signing secret (returned once, stored encrypted)."""
    errors = {}
    problem = url_problem(url)
    if problem:
        errors["url"] = problem
    unknown = set(events or []) - set(WebhookEvent.values)
    if not events:
        errors["events"] = "Choose at least one event."
    elif unknown:
        errors["events"] = f"Unknown event(s): {', '.join(sorted(unknown))}."
    if errors:
        raise ValidationError(errors)
    secret = "whsec_" + secrets.token_urlsafe(32)
    webhook = Webhook.objects.create(team=team, url=url, events=sorted(set(events)), description=description[:200],
                                     secret_encrypted=encrypt_secret(secret),
                                     created_by=getattr(actor, "user", actor) if actor else None)
    audit_record(action="prompt.webhook.create", obj=webhook, object_repr=url[:200],
                 changes={"url": url, "events": webhook.events}, actor=actor)
    return webhook, secret


@transaction.atomic
def webhook_delete(*, webhook: Webhook, actor=None) -> None:
    team_id, url, pk = webhook.team_id, webhook.url, webhook.pk
    webhook.delete()
    audit_record(action="prompt.webhook.delete", object_type="prompts.webhook", object_id=pk, object_repr=url[:200],
                 team=team_id, changes={"url": url}, actor=actor)


def webhooks_emit(*, team_id: int, event: str, payload: dict) -> list[WebhookDelivery]:
    """Inside the caller's transaction: one delivery row per subscribed webhook, sent once it commits."""
    hooks = Webhook.objects.filter(team_id=team_id, is_active=True, events__contains=[event])
    deliveries = [WebhookDelivery.objects.create(webhook=hook, event=event, payload=payload) for hook in hooks]
    for delivery in deliveries:
        transaction.on_commit(lambda pk=delivery.pk: task_queue("apps.prompts.tasks.webhook_deliver_task", pk))
    return deliveries


@dataclass
class SendResult:
    """One signed POST's outcome: `delivered`, `failed` (permanent: not retried) or `retry`."""

    outcome: str
    response_status: int | None = None
    excerpt: str = ""
    error: str = ""


def signed_post(*, url: str, secret: str, event: str, delivery_id: int, payload: dict) -> SendResult:
    """POST `payload` as signed JSON to `url` once (the signature and headers of this module's docstring), through
    the public-only client without redirects. Every outbound webhook of the portal is sent by this function."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "genai-portal-webhooks/1",
        EVENT_HEADER: event,
        DELIVERY_HEADER: str(delivery_id),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }
    try:
        with client_factory() as client:
            response = client.post(url, content=body, headers=headers)
    except DestinationRefused as exc:
        return SendResult("failed", error=f"Refused: {exc}"[:500])
    except httpx.HTTPError as exc:
        return SendResult("retry", error=f"{type(exc).__name__}: {exc}"[:500])
    excerpt = response.text[:500]
    if response.is_success:
        return SendResult("delivered", response.status_code, excerpt)
    if response.status_code in _PERMANENT and response.status_code not in _RETRYABLE_4XX:
        return SendResult("failed", response.status_code, excerpt,
                          f"HTTP {response.status_code}: the receiver refused the delivery; not retried.")
    return SendResult("retry", response.status_code, excerpt, f"HTTP {response.status_code}")


def webhook_delivery_attempt(delivery_id: int, *, final: bool = False) -> WebhookDelivery | None:
    """Send one delivery once. Raises DeliveryFailed when worth retrying (and `final` is false)."""
    with transaction.atomic():
        delivery = (WebhookDelivery.objects.select_for_update(skip_locked=True).select_related("webhook")
                    .filter(pk=delivery_id).first())
        if delivery is None or delivery.status in (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED):
            return delivery  # gone, done, or another worker holds it
        hook = delivery.webhook
        delivery.attempts += 1
        delivery.last_attempt_at = timezone.now()
        result = signed_post(url=hook.url, secret=decrypt_secret(hook.secret_encrypted).reveal(),
                             event=delivery.event, delivery_id=delivery.pk, payload=delivery.payload)
        delivery.response_status, delivery.error = result.response_status, result.error
        if result.response_status is not None:
            delivery.response_excerpt = result.excerpt
        retry = result.outcome == "retry"
        if result.outcome == "delivered":
            delivery.status = DeliveryStatus.DELIVERED
            delivery.delivered_at = timezone.now()
        elif result.outcome == "failed":
            delivery.status = DeliveryStatus.FAILED
        else:
            delivery.status = DeliveryStatus.FAILED if final or delivery.attempts >= MAX_ATTEMPTS \
                else DeliveryStatus.RETRYING
        delivery.save()
    if retry and delivery.status == DeliveryStatus.RETRYING:
        raise DeliveryFailed(delivery.error)
    return delivery
