"""Shared fixtures: the people of the permission matrix, and clients logged in as each.

The database is the real embedded PostgreSQL (pgserver) unless DATABASE_URL is set; Redis likewise.
"""

import pytest
from django.contrib.auth.models import Group

from apps.accounts.models import CouncilSeat, Role
from apps.accounts.services import api_token_create
from tests.factories import MembershipFactory, TeamFactory, UserFactory


@pytest.fixture(scope="session", autouse=True)
def _test_database_from_the_schema_snapshot():
    """pytest-django builds the test database with `migrate`: on the new, empty database load the schema snapshot
    first, as `make run` does (ADR 0007), so that `migrate` finds everything applied (~8 s of model-state
    rendering saved per run). A stale snapshot is ignored and the migrations run as before; the snapshot is
    checked against a database built by every migration in tests/portal/test_schema_snapshot.py."""
    from django.core.management.commands.migrate import Command

    migrate = Command.handle

    def handle(self, *args, **options):  # once: the first `migrate` of the session is the test database's
        from portal import schema

        Command.handle = migrate
        schema.load_snapshot_if_fresh()
        return migrate(self, *args, **options)

    Command.handle = handle
    yield
    Command.handle = migrate


@pytest.fixture(scope="session", autouse=True)
def _transactional_tests_emptied_by_delete():
    """Between transactional tests (live servers, the gateway, Celery workers) Django empties every table with one
    TRUNCATE. TRUNCATE gives each of the ~90 tables and their indexes new files: 0.5-5 s per test here, a third
    of the suite's time. DELETE of the few rows a test wrote costs milliseconds. `session_replication_role =
    replica` (superuser; the embedded server's role is one) skips the foreign-key and audit triggers for that
    transaction only, so the order of the DELETEs does not matter. Sequences are not reset, as with Django's
    TRUNCATE; a test asking for `reset_sequences` gets Django's own statement.

    Content types and permissions are kept, so the flush need not send `post_migrate` to write them again (~190
    queries, most of what was left). No app of the portal listens to `post_migrate`."""
    from django.core.management.commands import flush
    from django.db.backends.postgresql.operations import DatabaseOperations

    KEPT = {"django_content_type", "auth_permission"}
    truncate = DatabaseOperations.sql_flush
    superuser: dict[str, bool] = {}  # per database alias, asked at the first flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        alias = self.connection.alias
        if alias not in superuser:
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT current_setting('is_superuser') = 'on'")
                superuser[alias] = cursor.fetchone()[0]
        if reset_sequences or not tables or not superuser[alias]:  # a DATABASE_URL with a plain role: TRUNCATE
            return truncate(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        return ["SET LOCAL session_replication_role = replica",
                *(f"DELETE FROM {self.quote_name(table)}" for table in tables if table not in KEPT)]

    def no_post_migrate(*args, **kwargs):
        pass

    emit_post_migrate = flush.emit_post_migrate_signal
    DatabaseOperations.sql_flush, flush.emit_post_migrate_signal = sql_flush, no_post_migrate
    yield
    DatabaseOperations.sql_flush, flush.emit_post_migrate_signal = truncate, emit_post_migrate


@pytest.fixture(autouse=True)
def _fresh_throttle_counters():
    """Every test client signs in from 127.0.0.1: failures of one test must not throttle the next."""
    from apps.accounts import throttle

    throttle.reset()


@pytest.fixture(autouse=True)
def _fresh_model_routes():
    """Routes cached in process (apps/llm/routing.py) from an earlier test's rolled-back rows must not answer."""
    from apps.llm.routing import routes_reset

    routes_reset()


@pytest.fixture(autouse=True)
def _fresh_call_switches():
    """Call-switch and retrieval-switch answers cached in Redis (apps/llm/switches.py, apps/rag/switches.py) from
    an earlier test's rows must not answer."""
    from apps.llm.switches import switches_reset
    from apps.rag.switches import retrieval_switches_reset

    switches_reset()
    retrieval_switches_reset()


@pytest.fixture(autouse=True)
def _fresh_sli_sums(request):
    """SLI sums cached in Redis (apps/gateway/sli.py) from an earlier test's rolled-back rows must not answer."""
    if request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames):
        from apps.core.stamped_cache import stamp_replace
        from apps.gateway.sli import SETTLED_STAMP

        stamp_replace(SETTLED_STAMP)


@pytest.fixture(scope="session")
def _llm_standin_server():
    from apps.llm.standin import StandIn, serve_in_thread

    with serve_in_thread(StandIn(seed=7)) as server:
        yield server


@pytest.fixture
def llm_standin(_llm_standin_server):
    """The OpenAI-compatible stand-in upstream (apps/llm/standin.py), reset: `.base_url` (…/v1), `.standin`
    (script it: `.standin.fail_next(2, 500)`, `.standin.control({...})`, read `.standin.stats()`).
    Catalog rows for it: tests/support/standin.py."""
    _llm_standin_server.standin.reset()
    return _llm_standin_server


@pytest.fixture
def team(db):
    return TeamFactory(name="Support AI", slug="support-ai")


@pytest.fixture
def other_team(db):
    return TeamFactory(name="Search", slug="search")


def _member(team, username, role):
    user = UserFactory(username=username)
    MembershipFactory(team=team, user=user, role=role)
    return user


@pytest.fixture
def owner(team):
    return _member(team, "olivia-owner", Role.OWNER)


@pytest.fixture
def engineer(team):
    return _member(team, "evan-engineer", Role.ENGINEER)


@pytest.fixture
def viewer(team):
    return _member(team, "pat-pm", Role.VIEWER)


@pytest.fixture
def outsider(other_team):
    """An engineer of another team."""
    return _member(other_team, "oscar-other", Role.ENGINEER)


@pytest.fixture
def nobody(db):
    """Logged in, but in no team and on no council."""
    return UserFactory(username="nina-nobody")


@pytest.fixture
def council_member(db):
    user = UserFactory(username="sam-security")
    group, _ = Group.objects.get_or_create(name=CouncilSeat.SECURITY.group_name)
    user.groups.add(group)
    return user


@pytest.fixture
def admin_user(db):
    return UserFactory(username="ada-admin", is_staff=True, is_superuser=True)


@pytest.fixture
def token_for():
    """token_for(user, team, scope="read", days=30) -> (ApiToken, raw secret)."""

    def make(user, team, scope="read", days=30):
        issued = api_token_create(team=team, user=user, name=f"{user.username}-{scope}", scope=scope, days=days)
        return issued.token, issued.secret

    return make


@pytest.fixture
def client_for(client):
    """client_for(user) -> a Django test client with that user logged in (None: anonymous)."""
    from django.test import Client

    def make(user):
        c = Client()
        if user is not None:
            c.force_login(user)
        return c

    return make


@pytest.fixture
def celery_worker(transactional_db):
    """A real Celery worker (threads pool) on every portal queue, against the test Redis broker."""
    from tests.celery_support import running_worker

    with running_worker() as worker:
        yield worker


@pytest.fixture
def emails_inline(monkeypatch):
    """The inbox's e-mail task runs in-process when queued (after commit) instead of going to the broker."""
    from apps.notifications.tasks import notification_email_task

    monkeypatch.setattr(notification_email_task, "delay", lambda pk: notification_email_task.apply(args=[pk]))
