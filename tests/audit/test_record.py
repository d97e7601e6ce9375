"""audit_record: who, what, which team; in the transaction of the change; hashes that survive the database."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction

from apps.accounts.models import Role, Team
from apps.accounts.services import membership_set, team_create
from apps.audit.chain import GENESIS_HASH, event_hash
from apps.audit.models import AuditEvent
from apps.audit.services import audit_chain_verify, audit_record
from apps.core.request_context import acting_as


@pytest.mark.django_db
class TestWhoAndWhat:
    def test_the_first_event_links_to_the_genesis_and_the_next_to_it(self, team):
        first = audit_record(action="test.one", team=team)
        second = audit_record(action="test.two", team=team)
        assert first.prev_hash == GENESIS_HASH  # each test starts with an empty log
        assert second.prev_hash == first.hash
        assert event_hash(AuditEvent.objects.get(pk=second.pk)) == second.hash

    def test_the_actor_comes_from_the_request_context(self, engineer):
        with acting_as(engineer, request_id="req-12345678", ip="10.0.0.7"):
            event = audit_record(action="test.context")
        stored = AuditEvent.objects.get(pk=event.pk)
        assert (stored.actor_label, stored.actor_user_id) == ("evan-engineer", engineer.pk)
        assert (stored.request_id, stored.ip) == ("req-12345678", "10.0.0.7")

    def test_an_explicit_actor_wins_over_the_context(self, engineer, owner):
        with acting_as(engineer):
            event = audit_record(action="test.explicit", user=owner)
        assert event.actor_label == "olivia-owner"

    def test_without_anyone_the_actor_is_the_system(self, db):
        assert audit_record(action="test.system").actor_label == "system"

    def test_a_token_actor_is_named_with_its_key_and_user(self, team, engineer, token_for):
        token, _ = token_for(engineer, team)
        event = audit_record(action="test.token", token=token)
        assert event.actor_label == f"token gp_{token.key_id} (evan-engineer)"
        assert (event.actor_token_id, event.actor_user_id) == (token.pk, engineer.pk)

    def test_the_team_is_the_objects_team_or_the_team_itself(self, team, engineer, token_for):
        token, _ = token_for(engineer, team)
        assert audit_record(action="test.a", obj=token).team_id == team.pk
        event = audit_record(action="test.b", obj=team)
        assert (event.team_id, event.object_type, event.object_id, event.object_repr) == (
            team.pk, "accounts.team", str(team.pk), "Support AI")

    def test_a_malformed_ip_is_dropped_not_fatal(self, db):
        with acting_as(None, ip="not-an-ip"):
            assert audit_record(action="test.ip").ip is None

    @pytest.mark.parametrize("action", ["", "x" * 81])
    def test_a_bad_action_name_is_a_programming_error(self, db, action):
        with pytest.raises(ValueError, match="audit action"):
            audit_record(action=action)


@pytest.mark.django_db
class TestSameTransaction:
    def test_the_event_rolls_back_with_a_failed_change(self, team, owner, nobody):
        before = AuditEvent.objects.count()
        with pytest.raises(RuntimeError), transaction.atomic():
            membership_set(team=team, user=nobody, role=Role.ENGINEER, actor=owner)
            raise RuntimeError("the rest of the change failed")
        assert AuditEvent.objects.count() == before
        assert not team.memberships.filter(user=nobody).exists()

    def test_a_change_is_undone_when_its_event_cannot_be_written(self, monkeypatch, nobody):
        def broken(**kwargs):
            raise RuntimeError("audit store down")

        monkeypatch.setattr("apps.accounts.services.audit_record", broken)
        with pytest.raises(RuntimeError):
            team_create(name="Ghost Team", owner=nobody)
        assert not Team.objects.filter(slug="ghost-team").exists()

    def test_the_chain_continues_cleanly_after_a_rollback(self, team):
        audit_record(action="test.kept", team=team)
        with pytest.raises(RuntimeError), transaction.atomic():
            audit_record(action="test.lost", team=team)
            raise RuntimeError
        audit_record(action="test.after", team=team)
        assert audit_chain_verify().ok
        assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True))[-2:] == [
            "test.kept", "test.after"]


@pytest.mark.django_db
class TestHashesSurviveTheDatabase:
    """jsonb rewrites some numbers and PostgreSQL rewrites IPv6 text: the hash must not care."""

    def test_awkward_values_read_back_to_the_same_hash(self, team):
        with acting_as(None, ip="2001:0db8:0000:0000:0000:0000:0000:0001"):
            event = audit_record(action="test.values", team=team, changes={
                "big_float": 1e20, "negative_zero": -0.0, "tiny": 1.5e-07, "inexact": 0.1 + 0.2, "one": 1.0,
                "huge_int": 10**30, "nan": float("nan"), "nul": "a\x00b", "unicode": "café \u2028 ✓",
                "decimal": Decimal("12.50"), "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
                "set": {"b", "a"}, "nested": {"list": [1, 2.5, None, True], 3: "int key"},
            })
        stored = AuditEvent.objects.get(pk=event.pk)
        assert stored.ip == "2001:db8::1"
        assert stored.changes == event.changes
        assert event_hash(stored) == stored.hash
        assert audit_chain_verify().ok

    def test_ipv4_mapped_addresses_hash_the_same_after_reading_back(self, db):
        with acting_as(None, ip="::ffff:10.1.2.3"):
            event = audit_record(action="test.ip")
        assert event_hash(AuditEvent.objects.get(pk=event.pk)) == event.hash
