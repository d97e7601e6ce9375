"""The budgets page: who sees which budgets, who may change them, and per-field form errors."""

import pytest

from apps.costs.models import Budget
from apps.costs.services import budget_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def budgets(team, other_team, owner, admin_user):
    return (budget_create(actor=owner, name="Support monthly", team=team, amount="100", hard_cap="120"),
            budget_create(actor=admin_user, name="Search monthly", team=other_team, amount="50"))


@pytest.mark.parametrize("who,visible", [
    ("viewer", {"Support monthly"}), ("engineer", {"Support monthly"}), ("owner", {"Support monthly"}),
    ("outsider", {"Search monthly"}), ("nobody", set()), ("council_member", {"Support monthly", "Search monthly"}),
    ("admin_user", {"Support monthly", "Search monthly"}),
])
def test_each_role_sees_the_budgets_of_its_teams(request, client_for, budgets, who, visible):
    html = client_for(request.getfixturevalue(who)).get("/costs/budgets/").content.decode()

    assert {name for name in ("Support monthly", "Search monthly") if name in html} == visible


@pytest.mark.parametrize("who,status", [("owner", 200), ("admin_user", 200), ("engineer", 403), ("viewer", 403),
                                        ("outsider", 404), ("council_member", 403)])
def test_only_owners_and_admins_may_edit(request, client_for, budgets, who, status):
    response = client_for(request.getfixturevalue(who)).get(f"/costs/budgets/{budgets[0].pk}/")

    assert response.status_code == status


def test_an_owner_creates_a_budget_and_sees_field_errors(client_for, owner, team):
    c = client_for(owner)

    bad = c.post("/costs/budgets/", {"name": "", "team": team.pk, "amount": "-3", "period": "month",
                                     "thresholds": "50, x"})
    assert bad.status_code == 400
    html = bad.content.decode()
    assert "This field is required." in html and "thresholds" in html.lower()
    assert not Budget.objects.exists()

    ok = c.post("/costs/budgets/", {"name": "Support", "team": team.pk, "amount": "200", "period": "week",
                                    "thresholds": "50, 90", "hard_cap": "250", "is_active": "on"})
    assert ok.status_code == 302
    budget = Budget.objects.get()
    assert (budget.period, budget.thresholds, budget.hard_cap) == ("week", [50, 90], 250)


def test_an_engineer_cannot_post_a_budget(client_for, engineer, team):
    response = client_for(engineer).post("/costs/budgets/", {"name": "x", "team": team.pk, "amount": "1",
                                                            "period": "month"})

    assert response.status_code == 403 and not Budget.objects.exists()


def test_an_owner_edits_and_deletes_their_budget(client_for, owner, budgets, team):
    c = client_for(owner)
    budget = budgets[0]

    c.post(f"/costs/budgets/{budget.pk}/", {"name": "Support", "team": team.pk, "amount": "300", "period": "month",
                                            "thresholds": "80", "is_active": "on"})
    budget.refresh_from_db()
    assert (budget.amount, budget.thresholds, budget.hard_cap) == (300, [80], None)

    assert c.post(f"/costs/budgets/{budget.pk}/delete/").status_code == 302
    assert not Budget.objects.filter(pk=budget.pk).exists()


@pytest.mark.parametrize("use_case_id", ["refunds", "0", "-2", "1.5"])
def test_the_form_refuses_a_use_case_that_is_not_an_id(client_for, owner, team, use_case_id):
    response = client_for(owner).post("/costs/budgets/", {"name": "Refunds", "team": team.pk, "amount": "10",
                                                          "period": "month", "use_case_id": use_case_id})

    assert response.status_code == 400
    assert "a positive whole number" in response.content.decode()
    assert not Budget.objects.exists()


def test_an_owner_scopes_a_budget_to_a_use_case(client_for, owner, team):
    response = client_for(owner).post("/costs/budgets/", {"name": "Refunds", "team": team.pk, "amount": "10",
                                                          "period": "month", "use_case_id": "42"})

    assert response.status_code == 302
    assert Budget.objects.get().use_case_id == 42
    assert "use case #42" in client_for(owner).get("/costs/budgets/").content.decode()
