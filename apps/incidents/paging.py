"""The paging webhook (ADR 0087): per severity, an optional outbound webhook for paging tools (PagerDuty-,
Opsgenie-style receivers behind a small adapter). When an incident of that level is declared or raised to it,
one delivery row is written and sent after the commit by a Celery task, retried with the one retry policy.

The POST is prompts' signed webhook (apps/prompts/webhooks.py `signed_post`): JSON body, headers
`X-Portal-Event: incident.paged`, `X-Portal-Delivery`, `X-Portal-Timestamp` and
`X-Portal-Signature: sha256=HMAC-SHA256(secret, f"{timestamp}." + body)`; sent only to public addresses (no
redirects) unless WEBHOOKS_ALLOW_PRIVATE_NETWORKS. Secrets are encrypted at rest (apps/llm/crypto.py); admins
set them up in Django admin (Incidents → Paging webhooks), where the secret is shown once.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.tasks import task_queue
from apps.incidents.models import Incident, PagingDelivery, PagingWebhook
from apps.llm.crypto import decrypt_secret, encrypt_secret
from apps.prompts.models import DeliveryStatus
from apps.prompts.webhooks import MAX_ATTEMPTS, signed_post, url_problem

EVENT = "incident.paged"
DELIVER_TASK = "apps.incidents.tasks.paging_deliver_task"


class PagingFailed(Exception):
    """A transient failure: the task retries it with backoff."""


@transaction.atomic
def paging_webhook_save(*, webhook: PagingWebhook, actor=None) -> str | None:
    """Save a webhook set up in the admin; a new one gets its signing secret, returned once (stored encrypted).
    The URL is checked as prompts' webhooks are (http(s), no literal private address)."""
    problem = url_problem(webhook.url)
    if problem:
        raise ValidationError({"url": problem})
    secret = None
    if not webhook.secret_encrypted:
        secret = "whsec_" + secrets.token_urlsafe(32)
        webhook.secret_encrypted = encrypt_secret(secret)
    created = webhook.pk is None
    webhook.save()
    audit_record(action="incident.paging_webhook_save", obj=webhook, object_repr=webhook.url[:200], actor=actor,
                 changes={"created": created, "severity": webhook.severity, "url": webhook.url,
                          "active": webhook.is_active})
    return secret


def payload_of(incident: Incident, why: str) -> dict:
    return {"event": EVENT, "incident": {
        "id": incident.pk, "reference": incident.reference, "title": incident.title, "type": incident.kind,
        "severity": incident.severity, "severity_label": incident.get_severity_display(), "status": incident.status,
        "team": incident.team.slug, "commander": incident.commander.get_username() if incident.commander else None,
        "detected_at": incident.detected_at.isoformat(),
        "url": f"{settings.SITE_URL.rstrip('/')}{incident.get_absolute_url()}"}, "why": why}


def paging_webhooks_emit(incident: Incident, *, why: str) -> list[PagingDelivery]:
    """Inside the caller's transaction: one delivery per active webhook of the incident's severity, sent after
    the commit."""
    hooks = PagingWebhook.objects.filter(severity=incident.severity, is_active=True)
    deliveries = [PagingDelivery.objects.create(webhook=hook, incident=incident, event=EVENT,
                                                payload=payload_of(incident, why)) for hook in hooks]
    for delivery in deliveries:
        transaction.on_commit(lambda pk=delivery.pk: task_queue(DELIVER_TASK, pk))
    return deliveries


def paging_delivery_attempt(delivery_id: int, *, final: bool = False) -> PagingDelivery | None:
    """Send one delivery once. Raises PagingFailed when worth retrying (and `final` is false)."""
    with transaction.atomic():
        delivery = (PagingDelivery.objects.select_for_update(skip_locked=True).select_related("webhook")
                    .filter(pk=delivery_id).first())
        if delivery is None or delivery.status in (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED):
            return delivery  # gone, done, or another worker holds it
        delivery.attempts += 1
        delivery.last_attempt_at = timezone.now()
        result = signed_post(url=delivery.webhook.url, secret=decrypt_secret(delivery.webhook.secret_encrypted)
                             .reveal(), event=delivery.event, delivery_id=delivery.pk, payload=delivery.payload)
        delivery.response_status, delivery.error = result.response_status, result.error
        if result.outcome == "retry":
            delivery.status = DeliveryStatus.FAILED if final or delivery.attempts >= MAX_ATTEMPTS \
                else DeliveryStatus.RETRYING
        else:
            delivery.status = result.outcome  # "delivered" or "failed": DeliveryStatus values
            if result.outcome == DeliveryStatus.DELIVERED:
                delivery.delivered_at = timezone.now()
        delivery.save()
    if delivery.status == DeliveryStatus.RETRYING:
        raise PagingFailed(delivery.error)
    return delivery
