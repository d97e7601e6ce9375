"""Budgets: hard caps refuse the portal's own calls before they are made, reservations never leak, and
periods reset on schedule."""

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connections
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.costs import alerts
from apps.costs.budgets import BudgetExceeded, period_bounds, reservations_sweep
from apps.costs.models import Budget, BudgetPeriod, BudgetReservation, UsageEvent
from apps.costs.selectors import budget_usage
from apps.costs.services import UsageContext, budget_create, budget_update
from apps.llm import calls
from tests.costs.conftest import QUESTION, record, worst_case


def context(team, **extra) -> UsageContext:
    return UsageContext(source="playground", team_id=team.pk, feature="answer", **extra)


def spend(team, dollars: str, at=None) -> None:
    """Spend `dollars` for the team on priced-local ($1,000 per million input tokens)."""
    tokens = int(Decimal(dollars) * 1000)
    record({"team_id": team.pk, "feature": "answer", "model": "priced-local", "provider": "local",
            "input_tokens": tokens, "output_tokens": 0, "occurred_at": at or timezone.now(),
            "request_id": f"spend-{dollars}-{tokens}-{(at or timezone.now()).timestamp()}"})


@pytest.mark.django_db
def test_a_call_reserves_its_worst_case_and_settles_to_its_real_cost(capped_model, team, owner):
    budget = budget_create(actor=owner, name="Support", team=team, amount="100", hard_cap="100")
    seen = {}
    original = calls.adapter_for

    def spy(provider):  # look at the counter while the call is in flight, between reserve and settle
        period = BudgetPeriod.objects.get(budget=budget)
        seen["reserved"] = period.reserved
        seen["holds"] = BudgetReservation.objects.count()
        return original(provider)

    calls.adapter_for = spy
    try:
        result = calls.chat(model="priced-local", messages=QUESTION, context=context(team), max_tokens=50)
    finally:
        calls.adapter_for = original

    assert seen == {"reserved": worst_case(capped_model, 50), "holds": 1}
    period = BudgetPeriod.objects.get(budget=budget)
    assert (period.reserved, period.spent) == (0, result.cost) and result.cost > 0
    assert result.cost <= worst_case(capped_model, 50)
    assert not BudgetReservation.objects.exists()


@pytest.mark.django_db
def test_a_call_that_could_exceed_the_hard_cap_is_refused_before_it_is_made(capped_model, team, owner):
    spend(team, "9.95")
    budget_create(actor=owner, name="Support monthly", team=team, amount="10", hard_cap="10")

    with pytest.raises(BudgetExceeded) as refusal:
        calls.chat(model="priced-local", messages=QUESTION, context=context(team), max_tokens=100)

    message = str(refusal.value)
    assert "Support monthly" in message and "hard cap of $10.00" in message and "resets on" in message
    event = UsageEvent.objects.get(source="playground")
    assert (event.status, event.error_type, event.cost) == ("refused", "BudgetExceeded", Decimal(0))
    assert not BudgetReservation.objects.exists()


@pytest.mark.django_db
def test_budgets_of_other_teams_features_and_tenants_do_not_apply(capped_model, team, other_team, admin_user):
    spend(other_team, "50")
    budget_create(actor=admin_user, name="Search", team=other_team, amount="10", hard_cap="10")
    # a 200-token call could cost $0.43: more than these caps, so each refuses where it applies
    budget_create(actor=admin_user, name="Support · acme", team=team, tenant="acme", amount="0.40",
                  hard_cap="0.40")
    budget_create(actor=admin_user, name="Support · summarise", team=team, feature="summarise", amount="0.40",
                  hard_cap="0.40")

    calls.chat(model="priced-local", messages=QUESTION, context=context(team, tenant="globex"), max_tokens=200)

    with pytest.raises(BudgetExceeded, match="Support · acme"):
        calls.chat(model="priced-local", messages=QUESTION, context=context(team, tenant="acme"), max_tokens=200)


@pytest.mark.django_db
def test_an_unpriced_model_is_refused_where_a_hard_cap_applies(team, owner):
    from tests.factories import ModelFactory, ProviderFactory

    ModelFactory(name="mystery", provider=ProviderFactory(name="local", kind="local"), remote_name="local-extractive")
    budget_create(actor=owner, name="Capped", team=team, amount="10", hard_cap="10")

    with pytest.raises(BudgetExceeded, match="has no price"):
        calls.chat(model="mystery", messages=QUESTION, context=context(team))


@pytest.mark.django_db
def test_a_failed_call_releases_its_reservation(team, owner):
    from apps.costs.services import price_set
    from tests.factories import ModelFactory, ProviderFactory

    provider = ProviderFactory(name="nokey", kind="openai", base_url="http://127.0.0.1:9/v1", max_retries=0)
    ModelFactory(name="gpt-4o-mini", provider=provider, remote_name="gpt-4o-mini")
    price_set(model_name="gpt-4o-mini", input_per_mtok="0.15", output_per_mtok="0.6",
              valid_from=datetime(2025, 1, 1, tzinfo=UTC))
    budget = budget_create(actor=owner, name="Capped", team=team, amount="10", hard_cap="10")

    with pytest.raises(Exception):  # noqa: B017 - no key / no server: whichever the adapter says
        calls.chat(model="gpt-4o-mini", messages=QUESTION, context=context(team))

    assert UsageEvent.objects.get().status == "error"
    period = BudgetPeriod.objects.get(budget=budget)
    assert (period.reserved, period.spent) == (0, 0) and not BudgetReservation.objects.exists()


@pytest.mark.django_db
def test_the_sweeper_releases_reservations_whose_call_never_came_back(capped_model, team, owner):
    from apps.costs.budgets import reserve

    budget = budget_create(actor=owner, name="Capped", team=team, amount="10", hard_cap="10")
    reserve(request_id="crashed-worker", team_id=team.pk, feature="", tenant="", model="priced-local",
            worst_case_cost=Decimal("4"))
    assert BudgetPeriod.objects.get(budget=budget).reserved == 4

    assert reservations_sweep(now=timezone.now()) == 0  # not stale yet
    assert reservations_sweep(now=timezone.now() + timedelta(hours=1)) == 1

    assert BudgetPeriod.objects.get(budget=budget).reserved == 0
    assert not BudgetReservation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_calls_cannot_overspend_a_nearly_spent_budget(capped_model, team, owner):
    """Real threads, real connections: the conditional UPDATE holds the cap; nothing stays reserved."""
    max_tokens = 100
    worst = worst_case(capped_model, max_tokens)
    cap = Decimal("10")
    spend(team, str((cap - 3 * worst - Decimal("0.001")).quantize(Decimal("0.001"))))  # room for ~3 calls
    budget = budget_create(actor=owner, name="Nearly spent", team=team, amount=cap, hard_cap=cap)
    opening = BudgetPeriod.objects.get(budget=budget).spent
    barrier = threading.Barrier(50)
    outcomes: list[str] = []
    lock = threading.Lock()

    def one_call(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            calls.chat(model="priced-local", messages=QUESTION, max_tokens=max_tokens,
                       context=UsageContext(source="playground", team_id=team.pk, feature="answer",
                                            request_id=f"race-{i}"))
            result = "ok"
        except BudgetExceeded:
            result = "refused"
        except Exception as exc:  # noqa: BLE001 - reported below
            result = f"error {type(exc).__name__}: {exc}"
        finally:
            connections.close_all()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=one_call, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert sorted(set(outcomes)) == ["ok", "refused"], outcomes
    made = UsageEvent.objects.filter(request_id__startswith="race-", status="ok")
    assert made.count() == outcomes.count("ok") >= 1
    assert UsageEvent.objects.filter(request_id__startswith="race-", status="refused").count() == outcomes.count("refused")
    period = BudgetPeriod.objects.get(budget=budget)
    real = sum(e.cost for e in made)
    assert period.spent == opening + real  # the counter agrees with the ledger
    assert period.spent <= cap + worst  # at most one call's worst case over (in fact none: each fit when reserved)
    assert period.reserved == 0 and not BudgetReservation.objects.exists()  # nothing leaked


@pytest.mark.django_db
def test_a_monthly_budget_resets_when_the_clock_crosses_the_month(capped_model, team, owner, monkeypatch):
    clock = {"now": datetime(2025, 1, 31, 23, 50, tzinfo=UTC)}
    monkeypatch.setattr(timezone, "now", lambda: clock["now"])
    spend(team, "9.99")
    budget = budget_create(actor=owner, name="Monthly", team=team, amount="10", hard_cap="10")

    with pytest.raises(BudgetExceeded, match="resets on 2025-02-01"):
        calls.chat(model="priced-local", messages=QUESTION, context=context(team), max_tokens=100)

    clock["now"] = datetime(2025, 2, 1, 0, 10, tzinfo=UTC)
    result = calls.chat(model="priced-local", messages=QUESTION, context=context(team), max_tokens=100)

    january, february = BudgetPeriod.objects.filter(budget=budget).order_by("period_start")
    assert (january.period_start, january.period_end) == (datetime(2025, 1, 1, tzinfo=UTC),
                                                          datetime(2025, 2, 1, tzinfo=UTC))
    assert january.spent == Decimal("9.99")
    assert february.period_start == datetime(2025, 2, 1, tzinfo=UTC) and february.spent == result.cost


@pytest.mark.django_db
def test_a_weekly_budget_resets_on_monday_and_a_rolling_one_forgets_the_day_that_leaves(capped_model, team, owner, monkeypatch):
    from apps.costs.budgets import period_ensure

    clock = {"now": datetime(2025, 3, 2, 12, tzinfo=UTC)}  # a Sunday
    monkeypatch.setattr(timezone, "now", lambda: clock["now"])
    spend(team, "3", at=datetime(2025, 3, 2, 9, tzinfo=UTC))
    spend(team, "2", at=datetime(2025, 2, 1, 9, tzinfo=UTC))
    spend(team, "7", at=datetime(2025, 1, 31, 9, tzinfo=UTC))  # already outside the 30 days
    weekly = budget_create(actor=owner, name="Weekly", team=team, amount="10", period="week")
    rolling = budget_create(actor=owner, name="Rolling", team=team, amount="10", period="rolling_30d",
                            feature="answer")

    assert period_ensure(weekly).spent == 3
    assert period_ensure(rolling).spent == 5  # Feb 1 … Mar 2 is 30 days

    clock["now"] = datetime(2025, 3, 3, 0, 5, tzinfo=UTC)  # Monday: a new week; Feb 1 leaves the window
    assert period_ensure(weekly).spent == 0
    assert period_ensure(rolling).spent == 3
    spend(team, "1")
    assert BudgetPeriod.objects.get(budget=rolling).spent == 4


@pytest.mark.django_db
def test_only_owners_and_admins_set_budgets_and_every_change_is_audited(team, owner, engineer, viewer, admin_user):
    with pytest.raises(PermissionDenied):
        budget_create(actor=engineer, name="Nope", team=team, amount="10")
    with pytest.raises(PermissionDenied):
        budget_create(actor=viewer, name="Nope", team=team, amount="10")
    with pytest.raises(PermissionDenied):
        budget_create(actor=owner, name="Everyone", team=None, amount="10")

    budget = budget_create(actor=owner, name="Support", team=team, amount="10", thresholds="50, 90")
    budget_update(budget=budget, actor=owner, amount="20")
    budget_create(actor=admin_user, name="Company", team=None, amount="1000")

    assert Budget.objects.get(pk=budget.pk).thresholds == [50, 90]
    actions = list(AuditEvent.objects.filter(action__startswith="budget.").values_list("action", flat=True))
    assert actions == ["budget.create", "budget.update", "budget.create"]
    assert AuditEvent.objects.filter(action="budget.update").get().changes == {"amount": ["10.00", "20"]}


@pytest.mark.django_db
@pytest.mark.parametrize("values,field", [
    ({"amount": "-5"}, "amount"), ({"amount": "ten"}, "amount"), ({"hard_cap": "1"}, "hard_cap"),
    ({"thresholds": "50, lots"}, "thresholds"), ({"period": "fortnight"}, "period"), ({"name": " "}, "name"),
    ({"use_case_id": "refunds"}, "use_case_id"), ({"use_case_id": "0"}, "use_case_id"),
    ({"use_case_id": -4}, "use_case_id"), ({"use_case_id": "1.5"}, "use_case_id"),
])
def test_bad_budget_values_are_named_by_field(team, owner, values, field):
    with pytest.raises(ValidationError) as failure:
        budget_create(actor=owner, **{"name": "B", "team": team, "amount": "10", **values})

    assert field in failure.value.message_dict


def spend_on_use_case(team, use_case_id, dollars: str) -> None:
    """Spend `dollars` for the team on priced-local, attributed to a use case (None: no use case)."""
    tokens = int(Decimal(dollars) * 1000)
    record({"team_id": team.pk, "feature": "answer", "use_case_id": use_case_id, "model": "priced-local",
            "provider": "local", "input_tokens": tokens, "output_tokens": 0, "occurred_at": timezone.now()})


@pytest.mark.django_db
def test_a_use_case_budget_counts_and_caps_only_that_use_cases_usage(capped_model, team, owner):
    spend_on_use_case(team, 7, "3")
    spend_on_use_case(team, 8, "2")
    spend_on_use_case(team, None, "1")
    budget = budget_create(actor=owner, name="Refund helper", team=team, use_case_id=7, amount="3.40",
                           hard_cap="3.40")
    whole_team = budget_create(actor=owner, name="Support", team=team, amount="100")
    assert BudgetPeriod.objects.get(budget=budget).spent == 3  # opened from the ledger: use case 7 only
    assert BudgetPeriod.objects.get(budget=whole_team).spent == 6

    spend_on_use_case(team, 7, "0.25")
    spend_on_use_case(team, 8, "5")
    assert BudgetPeriod.objects.get(budget=budget).spent == Decimal("3.25")  # counted as the ledger records it
    assert budget_usage(budget, period_bounds(budget.period, timezone.now())) == Decimal("3.25")  # the gateway's seed
    today = timezone.now().date()
    assert alerts._daily_spend(budget, today, today) == {today: 3.25}  # what the forecast reads

    # a 200-token call could cost $0.43: over the use case's cap, and free of it for another use case
    calls.chat(model="priced-local", messages=QUESTION, context=context(team, use_case_id=8), max_tokens=200)
    with pytest.raises(BudgetExceeded, match="Refund helper") as refusal:
        calls.chat(model="priced-local", messages=QUESTION, context=context(team, use_case_id=7), max_tokens=200)
    assert "use case #7" in str(refusal.value)
    assert AuditEvent.objects.get(action="budget.create", object_repr="Refund helper").changes["use_case_id"] == 7
