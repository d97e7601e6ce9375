"""Notifications about use cases: an in-app inbox row and an e-mail (Django's backend; console in dev).

The seam: no shared notifications app existed when reviews was built. `notify()` is the only function the
rest of reviews calls; when `apps.notifications` arrives, make this delegate to its `notify(...)`.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction

from apps.accounts.models import CouncilSeat
from apps.reviews.models import Notification, UseCase

log = logging.getLogger(__name__)


def notify(*, recipients, kind: str, subject: str, body: str = "", use_case: UseCase | None = None) -> int:
    """Queue one inbox row per distinct active recipient, and e-mail them after commit. Returns the count."""
    users = {u.pk: u for u in recipients if u is not None and getattr(u, "is_active", False)}
    if not users:
        return 0
    url = use_case.get_absolute_url() if use_case is not None else ""
    Notification.objects.bulk_create([
        Notification(recipient=u, use_case=use_case, kind=kind, subject=subject[:200], body=body, url=url)
        for u in users.values()])
    emails = [u.email for u in users.values() if u.email]
    if emails:
        base = getattr(settings, "PORTAL_BASE_URL", "").rstrip("/")
        text = f"{body}\n\n{base}{url}" if url else body

        def send():
            try:
                send_mail(f"[GenAI Portal] {subject}", text, None, emails, fail_silently=False)
            except Exception:  # noqa: BLE001 - a mail outage must not undo the change it reports
                log.exception("could not e-mail notification %r", subject)

        transaction.on_commit(send)
    return len(users)


def seat_holders(seats) -> list:
    """Active users holding any of the given council seats ("any" = every seat)."""
    names = [CouncilSeat(s).group_name for s in (CouncilSeat.values if "any" in seats else seats)]
    return list(get_user_model().objects.filter(groups__name__in=names, is_active=True).distinct())


def team_people(use_case: UseCase) -> list:
    people = [use_case.business_owner, use_case.created_by]
    people += [s.submitted_by for s in use_case.submissions.select_related("submitted_by")]
    return [p for p in people if p is not None]


def unread_count(user) -> int:
    return Notification.objects.filter(recipient=user, read_at__isnull=True).count()
