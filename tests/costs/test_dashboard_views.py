"""The cost dashboards: every chart has its table and CSV, filters apply in SQL, and each role sees its teams."""

import csv
import io
from datetime import timedelta

import pytest
from django.templatetags.static import static
from django.utils import timezone

from apps.costs.rollups import day_start
from tests.costs.conftest import record

pytestmark = pytest.mark.django_db

CHARTS = ["spend", "drivers", "tokens", "outcomes", "cache", "gatewaycache", "cacheusecase", "forecast", "whatif"]


@pytest.fixture
def usage(prices, team, other_team):
    today = day_start(timezone.now())
    rows = []
    for d in range(10):
        at = today - timedelta(days=d) + timedelta(hours=9)
        rows.append({"occurred_at": at, "team_id": team.pk, "feature": "answer", "tenant": "acme",
                     "input_tokens": 1000 + d, "output_tokens": 100, "cached_input_tokens": 500,
                     "prompt_name": "support-answer", "prompt_version": 2, "outcome": "success",
                     "request_id": f"s-{d}"})
        rows.append({"occurred_at": at, "team_id": other_team.pk, "feature": "search-rerank", "tenant": "globex",
                     "model": "gpt-4o", "input_tokens": 3000, "output_tokens": 10, "request_id": f"o-{d}"})
    record(*rows)
    return rows


def test_the_dashboard_renders_every_chart_with_a_table_and_a_csv_link(client_for, viewer, usage):
    response = client_for(viewer).get("/costs/")

    assert response.status_code == 200
    html = response.content.decode()
    for name in CHARTS:
        assert f'data-testid="report-{name}"' in html
        assert f"/costs/charts/{name}.csv" in html
    assert static("vendor/plotly-basic.min.js") in html and static("portal/charts.js") in html
    assert "data-chart>" in html and "Plotly.newPlot" not in html  # drawn by charts.js, no inline script


def test_a_viewer_sees_only_their_teams_usage(client_for, viewer, usage):
    html = client_for(viewer).get("/costs/charts/spend/?group_by=feature").content.decode()

    assert "answer" in html and "search-rerank" not in html


@pytest.mark.parametrize("who,sees_other", [("admin_user", True), ("council_member", True), ("outsider", True),
                                            ("nobody", False)])
def test_admins_and_council_see_everything_and_others_only_their_teams(request, client_for, usage, who, sees_other):
    user = request.getfixturevalue(who)

    html = client_for(user).get("/costs/charts/spend/?group_by=feature").content.decode()

    assert ("search-rerank" in html) is sees_other
    assert ("answer" in html) is (who in ("admin_user", "council_member"))


def test_anonymous_is_sent_to_log_in(client, usage):
    response = client.get("/costs/")

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_team_filter_applies_to_the_chart_table_and_csv(client_for, admin_user, usage, team):
    c = client_for(admin_user)

    fragment = c.get("/costs/charts/spend/", {"team": team.slug, "group_by": "feature"}).content.decode()
    exported = c.get("/costs/charts/spend.csv", {"team": team.slug, "group_by": "feature"})

    assert "answer" in fragment and "search-rerank" not in fragment
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert rows[0] == ["Day", "Feature", "Cost (USD)", "Events"]
    assert {r[1] for r in rows[1:]} == {"answer"} and len(rows) == 11
    assert exported["Content-Disposition"].startswith('attachment; filename="costs-spend-')


def test_the_csv_holds_the_same_numbers_as_the_summary_api(client_for, admin_user, usage):
    from decimal import Decimal

    c = client_for(admin_user)
    exported = list(csv.DictReader(io.StringIO(c.get("/costs/charts/spend.csv?group_by=team").content.decode())))
    summary = c.get("/api/v1/usage/summary?group_by=team").json()

    by_team = {}
    for r in exported:
        by_team[r["Team"]] = by_team.get(r["Team"], Decimal(0)) + Decimal(r["Cost (USD)"])
    for group in summary["groups"]:
        assert abs(by_team[group["key"]] - Decimal(str(group["cost"]))) < Decimal("0.00001")


def test_htmx_filter_changes_return_only_the_charts_region(client_for, viewer, usage):
    response = client_for(viewer).get("/costs/?group_by=tenant", HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert "<html" not in html and 'data-testid="report-spend"' in html
    assert response["Vary"].count("HX-Request") == 1


def test_bad_filters_are_named_and_not_applied(client_for, viewer, usage):
    response = client_for(viewer).get("/costs/?start=2025-05-10&end=2025-05-01")

    assert response.status_code == 200
    assert "must be on or after" in response.content.decode()
    assert client_for(viewer).get("/costs/charts/spend.csv?start=nope").status_code == 400


def test_the_dashboard_reads_rollups_not_raw_events(client_for, viewer, usage, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    c = client_for(viewer)
    c.get("/costs/")  # warm the session and caches
    with CaptureQueriesContext(connection) as queries:
        assert c.get("/costs/").status_code == 200
    assert not [q["sql"] for q in queries.captured_queries if "costs_usageevent" in q["sql"]]
    assert len(queries.captured_queries) <= 40


def test_what_if_prices_last_months_tokens_at_the_target_model(client_for, admin_user, prices, team):
    from apps.costs.reports import last_month

    start, _ = last_month()
    record({"occurred_at": start + timedelta(days=3), "team_id": team.pk, "feature": "answer", "model": "gpt-4o",
            "input_tokens": 1_000_000, "output_tokens": 100_000})

    html = client_for(admin_user).get("/costs/charts/whatif/", {"whatif_feature": "answer",
                                                                 "whatif_model": "gpt-4o-mini"}).content.decode()

    # gpt-4o: 1M x $2.50 + 0.1M x $10 = $3.50; gpt-4o-mini: 1M x $0.15 + 0.1M x $0.60 = $0.21
    assert "$3.50" in html and "$0.21" in html
