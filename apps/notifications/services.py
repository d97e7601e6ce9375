"""notify(): put a message in people's inbox (once per dedupe key) and email it after commit."""

from __future__ import annotations

import logging

from django.db import connection, transaction
from django.utils import timezone

from apps.core.tasks import task_queue
from apps.notifications.models import Notification

log = logging.getLogger(__name__)


def notify(*, users, kind: str, title: str, body: str = "", link: str = "", dedupe_key: str = "",
           email: bool = True) -> list[Notification]:
    """One inbox message per distinct active user; a (user, dedupe_key) already delivered is skipped.

    Returns the notifications created. With `email`, each is emailed by a Celery task after the commit.
    """
    people = {u.pk: u for u in users if u is not None and getattr(u, "is_active", False)}
    if not people:
        return []
    now = timezone.now()
    ids = sorted(people)
    with transaction.atomic(), connection.cursor() as cursor:
        # ON CONFLICT on the partial unique index: a repeated dedupe key is skipped, atomically.
        cursor.execute(
            """
            INSERT INTO notifications_notification (user_id, kind, title, body, link, dedupe_key, created_at)
            SELECT u, %s, %s, %s, %s, %s, %s FROM unnest(%s::bigint[]) AS u
            ON CONFLICT (user_id, dedupe_key) WHERE dedupe_key <> '' DO NOTHING
            RETURNING id, user_id
            """,
            [kind[:64], title[:200], body, link[:500], dedupe_key[:200], now, ids],
        )
        created_rows = cursor.fetchall()
        created = list(Notification.objects.filter(pk__in=[r[0] for r in created_rows]))
        if email and created:
            to_send = [n.pk for n in created if people[n.user_id].email]
            if to_send:
                transaction.on_commit(lambda: _queue_emails(to_send))
    return created


def _queue_emails(ids: list[int]) -> None:
    for pk in ids:
        try:
            task_queue("apps.notifications.tasks.notification_email_task", pk)
        except Exception:  # noqa: BLE001 - a broker outage loses the email, never the inbox message
            log.exception("could not queue the email of notification %s", pk)


def notification_email_send(notification_id: int) -> bool:
    """Email one notification, once (claimed with a conditional UPDATE so two workers never both send)."""
    from django.conf import settings
    from django.core.mail import send_mail

    claimed = Notification.objects.filter(pk=notification_id, emailed_at__isnull=True).update(
        emailed_at=timezone.now())
    if not claimed:
        return False
    note = Notification.objects.select_related("user").get(pk=notification_id)
    if not note.user.email:
        return False
    link = f"{settings.SITE_URL.rstrip('/')}{note.link}" if note.link.startswith("/") else note.link
    body = note.body + (f"\n\n{link}" if link else "") + "\n\n— GenAI Portal (your inbox: /inbox/)"
    try:
        send_mail(subject=f"[GenAI Portal] {note.title}", message=body, from_email=None,
                  recipient_list=[note.user.email])
    except Exception:
        Notification.objects.filter(pk=notification_id).update(emailed_at=None)  # let a retry send it
        raise
    return True


def notifications_mark_read(*, user, ids: list[int] | None = None) -> int:
    """Mark some (or all) of a person's unread notifications read. Personal UI state: not audited."""
    rows = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        rows = rows.filter(pk__in=ids)
    return rows.update(read_at=timezone.now())


def unread_count(user) -> int:
    if not getattr(user, "is_authenticated", False):
        return 0
    return Notification.objects.filter(user=user, read_at__isnull=True).count()
