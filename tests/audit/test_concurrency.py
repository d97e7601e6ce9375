"""Concurrent writers, each in its own transaction on its own connection, extend one unbroken chain."""

import threading

import pytest
from django.db import connection, transaction

from apps.accounts.models import Team
from apps.audit.models import AuditEvent
from apps.audit.services import audit_chain_verify, audit_record

THREADS = 6
EVENTS_EACH = 15


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_produce_one_unbroken_chain():
    team = Team.objects.create(name="Concurrency", slug="concurrency")
    start = threading.Barrier(THREADS)
    errors = []

    def writer(n: int):
        try:
            start.wait(timeout=30)  # all threads begin together, to collide on the chain head
            for i in range(EVENTS_EACH):
                with transaction.atomic():
                    Team.objects.filter(pk=team.pk).exists()  # some work of the change before the event
                    audit_record(action="test.concurrent", team=team, changes={"writer": n, "i": i})
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own connection: close it

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []

    events = list(AuditEvent.objects.order_by("id"))
    assert len(events) == THREADS * EVENTS_EACH
    assert len({e.prev_hash for e in events}) == len(events)  # no fork: no two events share a predecessor
    assert {(e.changes["writer"], e.changes["i"]) for e in events} == {
        (n, i) for n in range(THREADS) for i in range(EVENTS_EACH)}
    report = audit_chain_verify()
    assert report.ok and report.checked == THREADS * EVENTS_EACH


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_writer_does_not_break_the_chain_of_others():
    errors = []
    ready = threading.Event()
    release = threading.Event()

    def failing_writer():
        try:
            with transaction.atomic():
                audit_record(action="test.lost")
                ready.set()  # holds the chain lock now
                release.wait(timeout=30)
                raise RuntimeError("the change failed after its event")
        except RuntimeError:
            pass
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    def waiting_writer():
        try:
            ready.wait(timeout=30)
            audit_record(action="test.kept")  # blocks on the lock until the failing writer rolls back
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    first = threading.Thread(target=failing_writer)
    second = threading.Thread(target=waiting_writer)
    first.start()
    second.start()
    ready.wait(timeout=30)
    release.set()
    first.join(timeout=60)
    second.join(timeout=60)
    assert errors == []
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["test.kept"]
    assert audit_chain_verify().ok
