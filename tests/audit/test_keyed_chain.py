"""With AUDIT_HMAC_KEY set, events are sealed with HMAC-SHA256 (hash version 3): someone who can write the
database but lacks the key cannot rewrite the chain so that it verifies, which a plain SHA-256 chain allows."""

import hashlib
import json

import pytest

from apps.audit import chain as audit_chain
from apps.audit.models import AuditEvent
from apps.audit.services import audit_chain_verify, audit_record

KEY = "audit-key-for-tests-0123456789abcdef"


@pytest.fixture
def keyed(settings):
    settings.AUDIT_HMAC_KEY = KEY
    return settings


def record(team, user, count: int, start: int = 0) -> list[AuditEvent]:
    ids = [audit_record(action=f"test.step{i}", team=team, user=user, changes={"step": i}).pk
           for i in range(start, start + count)]
    return list(AuditEvent.objects.filter(pk__in=ids).order_by("pk"))


def rewrite_without_the_key(events: list[AuditEvent], index: int) -> list[AuditEvent]:
    """What a database superuser can do: edit one event and recompute every later hash, with SHA-256."""
    prev = events[index - 1].hash if index else audit_chain.GENESIS_HASH
    for event in events[index:]:
        if event is events[index]:
            event.changes = {"step": "forged"}
        event.prev_hash = prev
        body = {"v": event.hash_version, "prev": prev, "at": audit_chain._utc(event.occurred_at),
                "actor": event.actor_label, "user": event.actor_user_id, "token": event.actor_token_id,
                "action": event.action, "type": event.object_type, "id": event.object_id,
                "repr": event.object_repr, "team": event.team_id, "changes": event.changes,
                "request": event.request_id, "ip": audit_chain.canonical_ip(event.ip)}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        event.hash = prev = hashlib.sha256(text.encode()).hexdigest()
    return events


@pytest.mark.django_db
def test_events_are_sealed_with_the_key_and_verify(keyed, team, engineer):
    events = record(team, engineer, 4)
    assert {e.hash_version for e in events} == {audit_chain.KEYED_VERSION}
    assert audit_chain_verify().ok


@pytest.mark.django_db
def test_a_rewrite_without_the_key_is_caught_where_it_starts(keyed, team, engineer):
    events = rewrite_without_the_key(record(team, engineer, 5), 2)
    report = audit_chain.walk(events)
    assert not report.ok and report.first_broken_id == events[2].pk
    assert "altered after it was written" in report.reason


@pytest.mark.django_db
def test_the_same_rewrite_passes_an_unkeyed_chain(team, engineer):
    """Why the key matters: without it the forged chain is self-consistent (only an anchor catches it)."""
    events = rewrite_without_the_key(record(team, engineer, 5), 2)
    assert events[0].hash_version == 2
    assert audit_chain.walk(events).ok


@pytest.mark.django_db
def test_without_the_key_a_keyed_chain_says_it_cannot_be_checked(keyed, team, engineer):
    events = record(team, engineer, 2)
    keyed.AUDIT_HMAC_KEY = ""
    report = audit_chain.walk(events)
    assert report.first_broken_id == events[0].pk
    assert "AUDIT_HMAC_KEY is not set here" in report.reason


@pytest.mark.django_db
def test_dropping_the_key_later_shows_as_a_downgrade(keyed, team, engineer):
    record(team, engineer, 2)
    keyed.AUDIT_HMAC_KEY = ""
    later = record(team, engineer, 1, start=2)[0]
    assert later.hash_version == 2
    keyed.AUDIT_HMAC_KEY = KEY
    report = audit_chain_verify()
    assert report.first_broken_id == later.pk and "older hash version" in report.reason
