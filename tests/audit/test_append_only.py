"""The database itself refuses to change or remove audit events, whatever code asks."""

import pytest
from django.db import DatabaseError, connection, transaction

from apps.audit.models import AuditEvent, AuditEventImmutable
from apps.audit.services import audit_record


@pytest.fixture
def event(team):
    audit_record(action="test.first", team=team)
    return audit_record(action="test.second", team=team, changes={"a": 1})


def sql(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


@pytest.mark.django_db
class TestTheTriggerRefuses:
    def test_a_raw_update(self, event):
        with pytest.raises(DatabaseError, match="append-only: UPDATE refused"), transaction.atomic():
            sql("UPDATE audit_auditevent SET action = 'test.forged' WHERE id = %s", [event.pk])
        assert AuditEvent.objects.get(pk=event.pk).action == "test.second"

    def test_a_raw_delete(self, event):
        with pytest.raises(DatabaseError, match="append-only: DELETE refused"), transaction.atomic():
            sql("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])
        assert AuditEvent.objects.filter(pk=event.pk).exists()

    def test_a_queryset_update(self, event):
        with pytest.raises(DatabaseError, match="UPDATE refused"), transaction.atomic():
            AuditEvent.objects.filter(pk=event.pk).update(changes={"a": 2})
        assert AuditEvent.objects.get(pk=event.pk).changes == {"a": 1}

    def test_a_queryset_delete(self, event):
        with pytest.raises(DatabaseError, match="DELETE refused"), transaction.atomic():
            AuditEvent.objects.all().delete()
        assert AuditEvent.objects.count() == 2

    def test_a_truncate(self, event):
        # Test databases may be emptied between tests; a session setting turns the production guard on.
        with pytest.raises(DatabaseError, match="TRUNCATE refused"), transaction.atomic():
            sql("SET LOCAL portal.audit_truncate_guard = 'on'")
            sql("TRUNCATE audit_auditevent")
        assert AuditEvent.objects.count() == 2

    def test_the_triggers_are_enabled(self, db):
        with connection.cursor() as cursor:
            cursor.execute("SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'audit_auditevent'::regclass "
                           "AND NOT tgisinternal ORDER BY tgname")
            assert cursor.fetchall() == [("audit_event_append_only", "O"), ("audit_event_no_truncate", "O")]


@pytest.mark.django_db
class TestTheModelRefuses:
    def test_saving_a_written_event(self, event):
        event.action = "test.forged"
        with pytest.raises(AuditEventImmutable, match="cannot be changed"):
            event.save()

    def test_deleting_an_event(self, event):
        with pytest.raises(AuditEventImmutable, match="cannot be deleted"):
            event.delete()
        assert AuditEvent.objects.filter(pk=event.pk).exists()
