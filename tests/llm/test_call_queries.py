"""What one model call costs the database: the statements of the call path, pinned (issue #4 throughput).

Every model call in the portal goes through apps.llm.calls, so a statement added here is paid by every eval
item, playground answer and RAG answer. The ledger's INSERT and rollup upsert go through a raw psycopg cursor
(apps.costs.db.execute_fast) that Django's query capture does not see, so they are counted separately.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.costs import db
from apps.costs.models import UsageEvent
from apps.llm import calls

pytestmark = pytest.mark.django_db

MESSAGES = [{"role": "user", "content": "How long do refunds take?"}]


@pytest.fixture
def fast_statements(monkeypatch):
    """The SQL sent through db.execute_fast (the ledger insert, the rollups), in order."""
    sent: list[str] = []
    real = db.execute_fast

    def counting(sql, params):
        sent.append(" ".join(sql.split())[:60])
        return real(sql, params)

    monkeypatch.setattr(db, "execute_fast", counting)
    return sent


def test_one_chat_call_takes_ten_statements(replay, gpt4o_mini, gpt4o_mini_price, usage_context, fast_statements):
    replay("chat_completion")
    calls.chat(model=gpt4o_mini, messages=MESSAGES, context=usage_context)  # warm: first-use work is not pinned
    UsageEvent.objects.all().delete()
    fast_statements.clear()
    replay("chat_completion")

    with CaptureQueriesContext(connection) as queries:
        result = calls.chat(model=gpt4o_mini, messages=MESSAGES, context=usage_context)

    assert result.cost is not None and UsageEvent.objects.count() == 1
    seen = [" ".join(q["sql"].split())[:40] for q in queries.captured_queries]
    # price at preflight, capped budgets (reserve), price at record; the ledger's transaction: advisory lock,
    # release reservations, active budgets (settle). Each lookup is one plain-SQL statement, no ORM query.
    # (BEGIN/COMMIT are a savepoint and its release inside the test's transaction.)
    assert len(seen) == 8, seen
    kinds = [s.split(" ")[0] for s in seen]
    assert kinds[:3] + kinds[4:7] == ["SELECT", "SELECT", "SELECT", "SELECT", "DELETE", "SELECT"], seen
    assert "costs_price" in queries.captured_queries[0]["sql"] and "costs_price" in queries.captured_queries[2]["sql"]
    assert "pg_advisory_xact_lock_shared" in seen[4], seen
    # The event insert, then the day/hour rollups and the token histogram in ONE statement.
    assert len(fast_statements) == 2, fast_statements
    assert fast_statements[0].startswith("INSERT INTO costs_usageevent")
    assert fast_statements[1].startswith("WITH rollups AS (INSERT INTO costs_usagerollup")
