"""The response cache's saving per use case (issue #14: "the saving shown on the cost dashboards"): the rollups carry
the events' use case, so the costs page, its CSV, the summary API and the use case's page show it — for the teams
the viewer may see, with the dashboard's filters — and the rows add up to the cache's total."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from apps.costs.models import UsageRollup
from apps.costs.rollups import day_start
from apps.reviews.models import UseCase
from tests.costs.conftest import record

pytestmark = pytest.mark.django_db


@pytest.fixture
def use_cases(team, other_team):
    return {"refunds": UseCase.objects.create(team=team, title="Refund helper"),
            "triage": UseCase.objects.create(team=team, title="Ticket triage"),
            "search": UseCase.objects.create(team=other_team, title="Search answers")}


def _traffic(team, use_case, *, hits: int, saving: str, tenant: str = "acme", at=None) -> list[dict]:
    """One paid call of the use case, then `hits` answers from the cache that saved `saving` each."""
    at = at or day_start(timezone.now()) + timedelta(hours=1)
    uc = use_case.pk if use_case else None
    tag = f"{team.slug}-{uc}-{tenant}"
    return [{"occurred_at": at, "team_id": team.pk, "use_case_id": uc, "tenant": tenant, "source": "gateway",
             "input_tokens": 1000, "output_tokens": 100, "request_id": f"paid-{tag}"}] + [
        {"occurred_at": at, "team_id": team.pk, "use_case_id": uc, "tenant": tenant, "source": "gateway",
         "cache_hit": True, "cache_saving": Decimal(saving), "request_id": f"hit-{tag}-{n}"} for n in range(hits)]


@pytest.fixture
def traffic(prices, team, other_team, use_cases):
    rows = (_traffic(team, use_cases["refunds"], hits=3, saving="0.25")
            + _traffic(team, use_cases["triage"], hits=1, saving="0.10", tenant="globex")
            + _traffic(team, None, hits=2, saving="0.05")
            + _traffic(other_team, use_cases["search"], hits=4, saving="0.50"))
    record(*rows)
    return rows


def _csv(client, query: str = "") -> list[dict]:
    response = client.get(f"/costs/charts/cacheusecase.csv{query}")
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def _saved(rows, **match) -> Decimal:
    return sum((r["cache_saving"] for r in rows if r.get("cache_hit") and all(r.get(k) == v for k, v in match.items())),
               Decimal(0))


def test_the_saving_is_shown_per_use_case_and_the_rows_add_up_to_the_caches_total(client_for, admin_user, traffic,
                                                                                   use_cases, team):
    client = client_for(admin_user)
    rows = _csv(client)

    by_use_case = {(r["Use case"], r["Team"]): Decimal(r["Saved (USD)"]) for r in rows}
    assert by_use_case == {
        ("Refund helper", "support-ai"): _saved(traffic, use_case_id=use_cases["refunds"].pk),
        ("Ticket triage", "support-ai"): _saved(traffic, use_case_id=use_cases["triage"].pk),
        ("(no use case)", "support-ai"): _saved(traffic, use_case_id=None),
        ("Search answers", "search"): _saved(traffic, use_case_id=use_cases["search"].pk)}
    refunds = next(r for r in rows if r["Use case"] == "Refund helper")
    assert (refunds["Requests"], refunds["Cache hits"]) == ("4", "3")  # the paid call and its three hits
    assert Decimal(refunds["Paid (USD)"]) > 0
    page = client.get("/costs/").content.decode()
    total = f"<strong>${sum(by_use_case.values()):,.2f}</strong>"
    assert f'data-testid="cache-use-case-saved">{total}' in page  # the card's figure is the rows' sum...
    assert f'data-testid="gateway-cache-saved">{total}' in page  # ...and the cache's total by team and source


def test_a_viewer_sees_only_their_teams_use_cases(client_for, viewer, outsider, traffic):
    mine = {r["Use case"] for r in _csv(client_for(viewer))}
    theirs = {r["Use case"] for r in _csv(client_for(outsider))}

    assert mine == {"Refund helper", "Ticket triage", "(no use case)"}
    assert theirs == {"Search answers"}


def test_an_event_naming_another_teams_use_case_never_shows_its_title(client_for, viewer, prices, team, use_cases):
    record(*_traffic(team, use_cases["search"], hits=1, saving="0.20"))  # an ingested id of the other team's

    assert [r["Use case"] for r in _csv(client_for(viewer))] == [f"use case #{use_cases['search'].pk}"]


def test_the_dashboards_filters_apply_team_tenant_and_period(client_for, admin_user, traffic, use_cases, team,
                                                            prices):
    client = client_for(admin_user)
    long_ago = day_start(timezone.now()) - timedelta(days=60)
    record(*_traffic(team, use_cases["refunds"], hits=5, saving="1.00", tenant="old", at=long_ago))

    one_team = {r["Use case"] for r in _csv(client, f"?team={team.slug}")}
    globex = [(r["Use case"], Decimal(r["Saved (USD)"])) for r in _csv(client, "?tenant=globex")]
    last_30_days = {r["Use case"]: Decimal(r["Saved (USD)"]) for r in _csv(client)}

    assert one_team == {"Refund helper", "Ticket triage", "(no use case)"}
    assert globex == [("Ticket triage", _saved(traffic, tenant="globex"))]
    assert last_30_days["Refund helper"] == _saved(traffic, use_case_id=use_cases["refunds"].pk)


def test_the_summary_api_groups_the_saving_by_use_case_for_the_tokens_team_only(api, token_for, viewer, team,
                                                                               traffic, use_cases):
    _token, secret = token_for(viewer, team, scope="read")

    response = api(secret).get("/api/v1/usage/summary", {"group_by": "use_case"})

    assert response.status_code == 200
    groups = {g["key"]: g for g in response.json()["groups"]}
    assert set(groups) == {use_cases["refunds"].pk, use_cases["triage"].pk, ""}  # not the other team's
    refunds = groups[use_cases["refunds"].pk]
    assert (refunds["cache_hits"], Decimal(str(refunds["cache_hit_savings"]))) == \
        (3, _saved(traffic, use_case_id=use_cases["refunds"].pk))
    assert Decimal(str(response.json()["totals"]["cache_hit_savings"])) == _saved(traffic, team_id=team.pk)


def test_the_use_case_page_shows_this_months_saving_to_who_may_see_it(client_for, owner, outsider, admin_user,
                                                                      traffic, use_cases):
    refunds = use_cases["refunds"]
    saved = _saved(traffic, use_case_id=refunds.pk)

    page = client_for(owner).get(f"/use-cases/{refunds.pk}/").content.decode()
    assert 'data-testid="use-case-cache-saved"' in page and f"${saved:.2f} this month" in page
    assert "(3 answers from the cache" in page
    assert client_for(outsider).get(f"/use-cases/{refunds.pk}/").status_code == 404  # not their team's use case
    other = client_for(admin_user).get(f"/use-cases/{use_cases['search'].pk}/").content.decode()
    assert f"${_saved(traffic, use_case_id=use_cases['search'].pk):.2f} this month" in other


def test_the_backfill_command_gives_rollups_built_before_the_dimension_their_use_case(traffic, use_cases):
    refunds = use_cases["refunds"]
    with connection.cursor() as c:  # the days' rollups lack the use case (as those built before migration 0014)
        c.execute("DELETE FROM costs_usagerollup WHERE use_case_id IS NOT NULL")
    assert not UsageRollup.objects.filter(use_case_id=refunds.pk).exists()

    out = io.StringIO()
    call_command("rollups_backfill_use_cases", stdout=out, stderr=io.StringIO())

    assert out.getvalue().startswith("1 day rebuilt")
    day = UsageRollup.objects.filter(granularity="dayx", use_case_id=refunds.pk)
    assert sum(r.cache_hit_savings for r in day) == _saved(traffic, use_case_id=refunds.pk)
