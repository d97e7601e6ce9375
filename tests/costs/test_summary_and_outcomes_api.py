"""GET /api/v1/usage/summary reads rollups with the caller's team filter; POST /api/v1/usage/outcomes is the
feedback API that cost-per-success is built on."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.costs.models import UsageEvent, UsageRollup
from apps.costs.rollups import day_start
from tests.costs.conftest import record

pytestmark = pytest.mark.django_db


@pytest.fixture
def usage(prices, team, other_team):
    today = day_start(timezone.now())
    rows = []
    for d in range(3):
        rows.append({"occurred_at": today - timedelta(days=d, hours=-1), "team_id": team.pk, "feature": "answer",
                     "tenant": "acme", "input_tokens": 1_000_000, "output_tokens": 0, "request_id": f"a-{d}"})
        rows.append({"occurred_at": today - timedelta(days=d, hours=-1), "team_id": other_team.pk, "feature": "rerank",
                     "model": "gpt-4o", "input_tokens": 1_000_000, "output_tokens": 0, "request_id": f"b-{d}"})
    rows.append({"occurred_at": today + timedelta(hours=1), "team_id": team.pk, "feature": "answer",
                 "model": "my-finetune", "input_tokens": 10, "request_id": "u-1"})
    record(*rows)


def test_the_summary_groups_totals_by_team_for_an_admin(client_for, admin_user, usage):
    body = client_for(admin_user).get("/api/v1/usage/summary?group_by=team").json()

    groups = {g["key"]: g for g in body["groups"]}
    assert set(groups) == {"support-ai", "search"}
    assert Decimal(str(groups["support-ai"]["cost"])) == Decimal("0.45")  # 3 x 1M x $0.15
    assert groups["support-ai"]["unpriced"] == 1 and groups["support-ai"]["events"] == 4
    assert Decimal(str(groups["search"]["cost"])) == Decimal("7.5")
    assert body["totals"]["events"] == 7 and body["granularity"] == "day"


def test_a_read_token_sees_only_its_team_and_an_ingest_token_may_not_read(api, usage, engineer, team, token_for):
    _, read = token_for(engineer, team, scope="read")
    _, ingest = token_for(engineer, team, scope="ingest")

    body = api(read).get("/api/v1/usage/summary", {"group_by": "feature"}).json()

    assert [g["key"] for g in body["groups"]] == ["answer"]
    assert api(ingest).get("/api/v1/usage/summary").status_code == 403


def test_summary_windows_and_groups_are_validated(client_for, admin_user, usage):
    c = client_for(admin_user)
    today = day_start(timezone.now())

    assert c.get("/api/v1/usage/summary?group_by=colour").status_code == 422
    bad = c.get("/api/v1/usage/summary?from=2025-13-01").json()
    assert "must be a date" in bad["errors"][0]["message"]
    assert c.get("/api/v1/usage/summary?from=2025-03-02&to=2025-03-01").status_code == 422
    odd = c.get("/api/v1/usage/summary", {"from": "2025-03-01T10:30:00Z", "to": "2025-03-02"}).json()
    assert "whole days" in odd["errors"][0]["message"]
    hourly = c.get("/api/v1/usage/summary", {"from": today.isoformat(), "to": (today + timedelta(hours=2)).isoformat(),
                                               "group_by": "model"}).json()
    assert hourly["granularity"] == "hour" and {g["key"] for g in hourly["groups"]} == {"gpt-4o-mini", "gpt-4o",
                                                                                       "my-finetune"}


def test_outcomes_move_events_between_success_and_failure_in_the_rollups(api, usage, ingest_token, other_team):
    _, secret = ingest_token

    body = api(secret).post("/api/v1/usage/outcomes", {"outcomes": [
        {"request_id": "a-0", "outcome": "success"},
        {"request_id": "a-1", "outcome": "failure"},
        {"request_id": "b-0", "outcome": "success"},  # another team's event
        {"request_id": "nope", "outcome": "success"},
        {"request_id": "a-2", "outcome": "great"},
    ]}).json()

    assert (body["updated"], body["unchanged"]) == (2, 0)
    assert [(r["index"], r["request_id"]) for r in body["rejected"]] == [(2, "b-0"), (3, "nope"), (4, "a-2")]
    assert "outcome must be one of" in body["rejected"][2]["errors"][0]
    assert UsageEvent.objects.get(request_id="b-0").outcome == "unknown"
    totals = {(r.successes, r.failures) for r in UsageRollup.objects.filter(granularity="day", feature="answer",
                                                                             model="gpt-4o-mini")}
    assert sum(s for s, _ in totals) == 1 and sum(f for _, f in totals) == 1

    again = api(secret).post("/api/v1/usage/outcomes", {"outcomes": [{"request_id": "a-0", "outcome": "failure"}]})
    assert again.json()["updated"] == 1
    day = UsageRollup.objects.filter(granularity="day", feature="answer", model="gpt-4o-mini")
    assert sum(r.successes for r in day) == 0 and sum(r.failures for r in day) == 2
