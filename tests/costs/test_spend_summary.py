"""One number per fact: the home glance, the Costs page, Prices and the model catalog read the same 30-day
spend, call count and unpriced count (apps.costs.selectors.spend_summary), and their labels say the window."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.costs import selectors
from apps.costs.rollups import day_start
from tests.costs.conftest import record

pytestmark = pytest.mark.django_db


@pytest.fixture
def usage(prices, team, other_team):
    today = day_start(timezone.now())
    rows = []
    for d in range(5):
        at = today - timedelta(days=d) + timedelta(minutes=30)
        rows.append({"occurred_at": at, "team_id": team.pk, "model": "gpt-4o", "input_tokens": 1000,
                     "output_tokens": 100, "request_id": f"p-{d}"})
        rows.append({"occurred_at": at, "team_id": team.pk, "model": "mystery-model", "input_tokens": 10,
                     "output_tokens": 10, "request_id": f"u-{d}"})
    rows.append({"occurred_at": today - timedelta(days=2), "team_id": team.pk, "model": "mystery-model",
                 "status": "error", "input_tokens": 0, "output_tokens": 0, "request_id": "e-1"})
    rows.append({"occurred_at": today - timedelta(days=1), "team_id": other_team.pk, "model": "gpt-4o",
                 "input_tokens": 5, "output_tokens": 5, "request_id": "o-1"})
    rows.append({"occurred_at": today - timedelta(days=45), "team_id": team.pk, "model": "gpt-4o",
                 "input_tokens": 5, "output_tokens": 5, "request_id": "old-1"})  # outside the window
    record(*rows)


def _figure(html: str, testid: str) -> str:
    return html.split(f'data-testid="{testid}"')[1].split('class="figure">')[1].split("</div>")[0].strip()


def test_home_costs_prices_and_models_show_the_same_spend_calls_and_unpriced_count(client_for, viewer, usage):
    spend = selectors.spend_summary(actor=viewer)
    assert spend.events and spend.unpriced and spend.cost
    c = client_for(viewer)
    home_glance = c.get("/costs/glance/").content.decode()  # the home page loads this card
    dashboard = c.get("/costs/").content.decode()
    assert _figure(home_glance, "spend-30d") == _figure(dashboard, "spend-30d")
    for html in (home_glance, dashboard):
        assert f"{spend.events} model calls" in html and f"{spend.unpriced} unpriced" in html
        assert "all priced" not in html
    prices = c.get("/costs/prices/").content.decode()
    assert f"({spend.unpriced} events, UTC days {spend.start:%Y-%m-%d} to {spend.last_day:%Y-%m-%d})" in prices
    models = c.get("/models/")
    rows = models.context["usage_models"]
    assert sum(m.events for m in rows) == spend.events and sum(m.unpriced for m in rows) == spend.unpriced
    assert {m.name for m in rows} == {"gpt-4o", "mystery-model"}
    assert 'data-usage-model="mystery-model"' in models.content.decode()


def test_the_home_page_has_no_spend_figure_of_its_own(client_for, viewer, usage):
    response = client_for(viewer).get("/")
    assert not hasattr(response.context["summary"], "spend_30d")
    assert "Spend, last 30 days" not in response.content.decode()  # it comes from the costs glance
    assert response.context["summary"].usage_model_count == 2


def test_the_spend_counts_only_teams_the_viewer_may_see(viewer, admin_user, usage):
    assert selectors.spend_summary(actor=admin_user).events == selectors.spend_summary(actor=viewer).events + 1
