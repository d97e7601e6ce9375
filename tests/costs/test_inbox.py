"""The portal inbox (apps.notifications): notify once per dedupe key, unread count, mark read, own messages only."""

import pytest

from apps.notifications.models import Notification
from apps.notifications.services import notification_email_send, notify, unread_count

pytestmark = pytest.mark.django_db


def test_notify_delivers_once_per_person_and_dedupe_key(owner, viewer, engineer):
    first = notify(users=[owner, viewer, owner], kind="budget.threshold", title="Over 50%", dedupe_key="k1")
    again = notify(users=[owner, viewer, engineer], kind="budget.threshold", title="Over 50%", dedupe_key="k1")

    assert len(first) == 2 and [n.user for n in again] == [engineer]
    assert Notification.objects.count() == 3


def test_the_inbox_lists_my_messages_with_the_unread_count_and_marks_them_read(client_for, owner, viewer):
    notify(users=[owner], kind="cost.anomaly", title="Cost anomaly: Support AI", body="8x", link="/costs/")
    notify(users=[owner], kind="budget.threshold", title="Budget passed 80%")
    notify(users=[viewer], kind="budget.threshold", title="Someone else's")
    c = client_for(owner)

    page = c.get("/inbox/").content.decode()
    assert "2 unread" in page and "Cost anomaly: Support AI" in page and "Someone else" not in page

    one = Notification.objects.filter(user=owner).first()
    fragment = c.post("/inbox/read/", {"id": one.pk}, HTTP_HX_REQUEST="true").content.decode()
    assert "1 unread" in fragment and 'hx-swap-oob="true"' in fragment and "<html" not in fragment

    c.post("/inbox/read/", {"id": Notification.objects.get(user=viewer).pk})  # not mine: untouched
    assert unread_count(viewer) == 1
    c.post("/inbox/read/")
    assert unread_count(owner) == 0


def test_the_inbox_needs_a_login(client):
    assert client.get("/inbox/").status_code == 302


def test_an_email_is_sent_once_even_if_the_task_runs_twice(owner):
    from django.core import mail

    note = notify(users=[owner], kind="budget.threshold", title="Budget passed 50%", body="$60 of $100",
                  link="/costs/budgets/")[0]

    assert notification_email_send(note.pk) is True
    assert notification_email_send(note.pk) is False
    assert len(mail.outbox) == 1 and "/costs/budgets/" in mail.outbox[0].body
