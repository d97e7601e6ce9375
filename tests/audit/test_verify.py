"""manage.py verify_audit: passes on an intact chain and names the first broken link after tampering.

Tampering is done the way an attacker with database rights would: disable the append-only trigger, change
rows, enable it again.
"""

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.audit.chain import GENESIS_HASH, event_hash
from apps.audit.models import AuditEvent
from apps.audit.services import audit_chain_verify, audit_record

TRIGGER = "audit_event_append_only"


def verify(*args) -> str:
    out = io.StringIO()
    call_command("verify_audit", *args, stdout=out)
    return out.getvalue()


def tamper(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE audit_auditevent DISABLE TRIGGER {TRIGGER}")
        cursor.execute(statement, params)
        cursor.execute(f"ALTER TABLE audit_auditevent ENABLE TRIGGER {TRIGGER}")


@pytest.fixture
def chain(team, engineer):
    """Five events; returns their ids in order."""
    return [audit_record(action=f"test.step{i}", team=team, user=engineer, changes={"step": i}).pk
            for i in range(5)]


@pytest.mark.django_db
class TestVerifyAudit:
    def test_an_intact_chain_passes_and_prints_its_head(self, chain):
        out = verify()
        head = AuditEvent.objects.get(pk=chain[-1])
        assert f"Audit chain intact: 5 events verified; head #{head.pk} {head.hash}" in out

    def test_an_empty_log_is_intact(self, db):
        assert "0 events verified; the log is empty" in verify()

    def test_a_changed_row_is_named(self, chain):
        tamper("UPDATE audit_auditevent SET changes = '{\"step\": 99}' WHERE id = %s", [chain[2]])
        with pytest.raises(CommandError, match=rf"BROKEN at event #{chain[2]} after 2 good events: "
                                               rf"event #{chain[2]} was altered after it was written"):
            verify()

    def test_a_changed_row_with_a_recomputed_hash_breaks_the_next_link(self, chain):
        forged = AuditEvent.objects.get(pk=chain[2])
        forged.object_repr = "forged"
        tamper("UPDATE audit_auditevent SET object_repr = 'forged', hash = %s WHERE id = %s",
               [event_hash(forged), chain[2]])
        with pytest.raises(CommandError, match=rf"BROKEN at event #{chain[3]} .*does not link to #{chain[2]}"):
            verify()

    def test_a_deleted_row_is_named_by_the_event_after_it(self, chain):
        tamper("DELETE FROM audit_auditevent WHERE id = %s", [chain[1]])
        with pytest.raises(CommandError, match=rf"BROKEN at event #{chain[2]} after 1 good events: "
                                               rf"event #{chain[2]} does not link to #{chain[0]}"):
            verify()

    def test_a_deleted_first_row_is_named(self, chain):
        tamper("DELETE FROM audit_auditevent WHERE id = %s", [chain[0]])
        with pytest.raises(CommandError, match=rf"#{chain[1]} does not link to the start of the log"):
            verify()

    def test_a_deleted_tail_is_caught_by_an_anchor(self, chain):
        head = AuditEvent.objects.get(pk=chain[-1])
        anchor = f"{head.pk}:{head.hash}"
        assert "intact" in verify("--anchor", anchor)
        tamper("DELETE FROM audit_auditevent WHERE id >= %s", [chain[3]])
        assert "intact" in verify()  # the chain alone cannot see a cut tail
        with pytest.raises(CommandError, match=rf"the log ends at #{chain[2]}, before the anchor event #{head.pk}"):
            verify("--anchor", anchor)

    def test_a_wholesale_rewrite_is_caught_by_an_anchor(self, chain):
        anchor_event = AuditEvent.objects.get(pk=chain[1])
        prev = GENESIS_HASH
        for event in AuditEvent.objects.order_by("id"):  # rewrite every row and every hash after it
            event.changes = {"step": "rewritten"}
            event.prev_hash = prev
            event.hash = event_hash(event)
            tamper("UPDATE audit_auditevent SET changes = %s, prev_hash = %s, hash = %s WHERE id = %s",
                   [json.dumps(event.changes), event.prev_hash, event.hash, event.pk])
            prev = event.hash
        assert "intact" in verify()
        with pytest.raises(CommandError, match=rf"event #{chain[1]} is not the anchored event"):
            verify("--anchor", f"{anchor_event.pk}:{anchor_event.hash}")

    @pytest.mark.parametrize("anchor", ["12", "x:y", "12:" + "a" * 10])
    def test_a_malformed_anchor_is_a_clear_error(self, db, anchor):
        with pytest.raises(CommandError, match="--anchor must look like"):
            verify("--anchor", anchor)


@pytest.mark.django_db
class TestOfflineVerificationOfAnExport:
    def export(self, client_for, admin_user, tmp_path):
        response = client_for(admin_user).get("/audit/export.jsonl")
        path = tmp_path / "audit.jsonl"
        path.write_bytes(b"".join(response.streaming_content))
        return path

    def test_a_full_export_verifies_offline(self, chain, client_for, admin_user, tmp_path):
        path = self.export(client_for, admin_user, tmp_path)
        assert "Audit chain intact: 5 events verified" in verify("--file", str(path))

    def test_an_edited_export_fails(self, chain, client_for, admin_user, tmp_path):
        path = self.export(client_for, admin_user, tmp_path)
        lines = path.read_text().splitlines()
        row = json.loads(lines[3])
        row["actor"] = "someone-else"
        lines[3] = json.dumps(row)
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(CommandError, match=rf"event #{row['id']} was altered"):
            verify("--file", str(path))

    def test_an_unreadable_file_is_a_clear_error(self, db, tmp_path):
        path = tmp_path / "bad.jsonl"
        path.write_text("{not json\n")
        with pytest.raises(CommandError, match="Cannot read"):
            verify("--file", str(path))


@pytest.mark.django_db
class TestHashVersions:
    def legacy(self, prev_hash, action):
        """A row as the first release wrote it (hash version 1)."""
        event = AuditEvent(actor_label="system", action=action, changes={}, hash_version=1, prev_hash=prev_hash)
        event.hash = event_hash(event)
        event.save(force_insert=True)
        return event

    def test_version_1_rows_before_version_2_rows_verify(self, db):
        old = self.legacy(GENESIS_HASH, "test.legacy")
        new = audit_record(action="test.new")
        assert new.prev_hash == old.hash and new.hash_version == 2
        assert audit_chain_verify().ok

    def test_a_version_1_row_after_a_version_2_row_is_refused(self, db):
        new = audit_record(action="test.new")
        downgraded = self.legacy(new.hash, "test.downgraded")
        report = audit_chain_verify()
        assert report.first_broken_id == downgraded.pk and "older hash version" in report.reason

    def test_version_2_covers_what_version_1_missed(self, db):
        event = audit_record(action="test.repr", object_repr="original")
        tamper("UPDATE audit_auditevent SET object_repr = 'changed' WHERE id = %s", [event.pk])
        assert audit_chain_verify().first_broken_id == event.pk
