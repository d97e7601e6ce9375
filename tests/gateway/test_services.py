"""Gateway keys: issued once and hashed, rotated with an overlap, limits changed and revoked, each audited."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.gateway import keys
from apps.gateway.models import GatewayKey
from apps.gateway.services import (
    gateway_key_create,
    gateway_key_revoke,
    gateway_key_rotate,
    gateway_key_update,
)

pytestmark = pytest.mark.django_db


def test_a_key_is_stored_hashed_and_its_secret_shown_once(team, owner):
    issued = gateway_key_create(team=team, name="bot", feature="support-bot", actor=owner)
    key = GatewayKey.objects.get()
    assert issued.secret.startswith(key.prefix + "-")
    assert key.key_hash == keys.hash_secret(issued.secret)
    assert issued.secret not in str(GatewayKey.objects.values().get())
    event = AuditEvent.objects.get(action="gateway_key.create")
    assert key.prefix in str(event.changes) and issued.secret not in str(event.changes)


def test_engineers_create_keys_for_their_team_viewers_and_outsiders_may_not(team, engineer, viewer, outsider):
    assert gateway_key_create(team=team, name="a", feature="f", actor=engineer).key.team == team
    for person in (viewer, outsider):
        with pytest.raises(PermissionDenied):
            gateway_key_create(team=team, name="b", feature="f", actor=person)
    assert GatewayKey.objects.count() == 1


def test_bad_input_names_each_field_and_creates_nothing(team, owner):
    with pytest.raises(ValidationError) as caught:
        gateway_key_create(team=team, name="", feature="", use_case_id="x", allowed_aliases=["bad alias!"],
                           requests_per_minute="-3", dollars_per_day="lots", actor=owner)
    assert set(caught.value.message_dict) == {"name", "feature", "use_case_id", "allowed_aliases",
                                              "requests_per_minute", "dollars_per_day"}
    assert not GatewayKey.objects.exists()


def test_rotation_keeps_the_old_key_working_until_the_overlap_ends(team, owner):
    old = gateway_key_create(team=team, name="bot", feature="f", requests_per_minute=5, actor=owner).key
    new = gateway_key_rotate(key=old, overlap=timedelta(hours=1), actor=owner).key
    old.refresh_from_db()
    assert new.rotated_from == old and new.requests_per_minute == 5
    assert old.state() == "retiring" and keys.KeyInfo.of(old).refusal() is None
    later = timezone.now() + timedelta(hours=2)
    assert old.state(later) == "retired" and "rotated" in keys.KeyInfo.of(old).refusal(later)
    assert AuditEvent.objects.filter(action="gateway_key.rotate").count() == 1


def test_only_owners_rotate_and_change_limits(team, owner, engineer):
    key = gateway_key_create(team=team, name="bot", feature="f", actor=engineer).key
    with pytest.raises(PermissionDenied):
        gateway_key_rotate(key=key, actor=engineer)
    with pytest.raises(PermissionDenied):
        gateway_key_update(key=key, requests_per_minute=1, actor=engineer)
    gateway_key_update(key=key, requests_per_minute=1, allowed_aliases="chat, embed", actor=owner)
    key.refresh_from_db()
    assert key.requests_per_minute == 1 and key.allowed_aliases == ["chat", "embed"]
    assert AuditEvent.objects.filter(action="gateway_key.update").count() == 1


def test_an_engineer_revokes_their_own_key_but_not_a_colleagues(team, owner, engineer):
    mine = gateway_key_create(team=team, name="mine", feature="f", actor=engineer).key
    theirs = gateway_key_create(team=team, name="theirs", feature="f", actor=owner).key
    gateway_key_revoke(key=mine, actor=engineer)
    with pytest.raises(PermissionDenied):
        gateway_key_revoke(key=theirs, actor=engineer)
    gateway_key_revoke(key=mine, actor=engineer)  # twice: nothing more recorded
    assert AuditEvent.objects.filter(action="gateway_key.revoke").count() == 1
    mine.refresh_from_db()
    assert mine.state() == "revoked" and "revoked" in keys.KeyInfo.of(mine).refusal()


def test_every_change_moves_the_stamp_after_commit(team, owner, django_capture_on_commit_callbacks):
    before = keys.portal_redis.client().get(keys.stamp_key())
    with django_capture_on_commit_callbacks(execute=True):
        key = gateway_key_create(team=team, name="bot", feature="f", actor=owner).key
    with django_capture_on_commit_callbacks(execute=True):
        gateway_key_revoke(key=key, actor=owner)
    after = keys.portal_redis.client().get(keys.stamp_key())
    assert int(after) == int(before or 0) + 2


def test_the_command_prints_the_key_and_only_it(team):
    out = StringIO()
    call_command("create_gateway_key", "--team", team.slug, "--feature", "support-bot", "--alias", "chat",
                 stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and keys.well_formed(lines[0])
    key = GatewayKey.objects.get(key_hash=keys.hash_secret(lines[0]))
    assert key.feature == "support-bot" and key.allowed_aliases == ["chat"]


# --- expiry notices ----------------------------------------------------------------------------------------


def test_a_keys_creator_and_team_owners_are_told_before_it_expires_once_per_threshold(
        team, owner, engineer, viewer, outsider, settings, mailoutbox, django_capture_on_commit_callbacks,
        emails_inline):
    from apps.gateway.services import gateway_keys_expiry_notify
    from apps.notifications.models import Notification

    settings.GATEWAY_KEY_EXPIRY_NOTICE_DAYS = ["14", "3", "1"]
    now = timezone.now()
    soon = gateway_key_create(team=team, name="bot", feature="support-bot", actor=engineer,
                              expires_at=now + timedelta(days=10)).key
    gateway_key_create(team=team, name="later", feature="f", actor=engineer, expires_at=now + timedelta(days=40))
    gateway_key_create(team=team, name="forever", feature="f", actor=engineer)
    revoked = gateway_key_create(team=team, name="gone", feature="f", actor=engineer,
                                 expires_at=now + timedelta(days=2)).key
    gateway_key_revoke(key=revoked, actor=owner)

    with django_capture_on_commit_callbacks(execute=True):
        assert gateway_keys_expiry_notify(now=now) == 2  # the creator and the owner, for the key in 10 days
    assert gateway_keys_expiry_notify(now=now + timedelta(hours=12)) == 0  # the same threshold: not again
    assert gateway_keys_expiry_notify(now=now + timedelta(days=8)) == 2  # 2 days left: the 3-day threshold

    told = Notification.objects.filter(kind="gateway.key_expiry")
    assert {n.user for n in told} == {engineer, owner}  # not the viewer, not another team
    assert all(soon.prefix in n.title and n.link.endswith(f"/{soon.pk}/") for n in told)
    assert sorted(m.to[0] for m in mailoutbox) == sorted([engineer.email, owner.email])  # the first notice's


def test_the_expiry_task_only_calls_the_service(team, engineer, settings):
    from apps.gateway.tasks import gateway_keys_expiry_notify_task

    settings.GATEWAY_KEY_EXPIRY_NOTICE_DAYS = ["3"]
    gateway_key_create(team=team, name="bot", feature="f", actor=engineer,
                       expires_at=timezone.now() + timedelta(days=1))
    assert gateway_keys_expiry_notify_task.apply().get() == 1
