"""Budgets: periods, counters, reservations before a call, settlement after it, and the sweeper.

A budget's period has one counter row (BudgetPeriod: `spent`, `reserved`). The portal's own calls reserve
their worst-case cost with ONE conditional UPDATE per capped budget —
`SET reserved = reserved + x WHERE spent + reserved + x <= cap` — so concurrent calls can never together
reserve past the cap; recording the call's usage event settles it (reserved −x, spent +cost) in the ledger's
transaction. A failed call records an event too, which releases the reservation; a reservation whose event
never arrives (a crash) expires and the sweeper releases it.

Periods are UTC: calendar month, ISO week (Monday), or rolling 30 days (one counter row whose window slides a
whole day at a time: today and the 29 days before). A new period is a new row, so a reset cannot be missed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from apps.costs import conf
from apps.costs.models import (
    Budget,
    BudgetPeriod,
    BudgetPeriodKind,
    BudgetReservation,
    Granularity,
    UsageEvent,
    UsageRollup,
)
from apps.costs.rollups import day_start, lock_exclusive

ROLLING_DAYS = 30
ROLLING_ANCHOR = datetime(1970, 1, 1, tzinfo=UTC)  # the one counter row of a rolling budget


class BudgetExceeded(Exception):
    """A hard cap refuses a call before it is made. `str(exc)` is for the person who asked."""

    error_type = "BudgetExceeded"

    def __init__(self, message: str, *, budget: Budget | None = None):
        super().__init__(message)
        self.message = message
        self.budget = budget


@dataclass(frozen=True)
class PeriodBounds:
    start: datetime  # the counter row's key (ROLLING_ANCHOR for rolling budgets)
    end: datetime | None
    window_start: datetime | None = None  # rolling: the oldest moment still counted

    @property
    def counted_from(self) -> datetime:
        return self.window_start or self.start


def period_bounds(kind: str, at: datetime) -> PeriodBounds:
    at = at.astimezone(UTC)
    day = day_start(at)
    if kind == BudgetPeriodKind.MONTH:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        return PeriodBounds(start, end)
    if kind == BudgetPeriodKind.WEEK:
        start = day - timedelta(days=day.weekday())
        return PeriodBounds(start, start + timedelta(days=7))
    return PeriodBounds(ROLLING_ANCHOR, None, day - timedelta(days=ROLLING_DAYS - 1))


_BUDGET_FIELDS = [f.attname for f in Budget._meta.concrete_fields]
_BUDGET_SELECT = f"SELECT {', '.join(f.column for f in Budget._meta.concrete_fields)} FROM costs_budget"


def _budgets_where(where: str, params: list) -> list[Budget]:
    """Budget rows in plain SQL: asked on every model call (reserve, settle), where building the ORM query cost
    ~1 ms of CPU, ~20x the query (issue #4 throughput). No column needs a converter (no JSON)."""
    with connection.cursor() as cursor:
        cursor.execute(f"{_BUDGET_SELECT} WHERE {where} ORDER BY id", params)
        return [Budget.from_db(connection.alias, _BUDGET_FIELDS, row) for row in cursor.fetchall()]


def matching_budgets(team_id, feature: str, tenant: str, use_case_id: int | None = None, *,
                     capped_only: bool = False) -> list[Budget]:
    return _budgets_where(
        "is_active AND (team_id = %s OR team_id IS NULL) AND feature IN (%s, '') AND tenant IN (%s, '')"
        " AND (use_case_id = %s OR use_case_id IS NULL)"
        + (" AND hard_cap IS NOT NULL" if capped_only else ""), [team_id, feature, tenant, use_case_id])


def active_budgets() -> list[Budget]:
    return _budgets_where("is_active", [])


def scope_rollups(budget: Budget, start: datetime, end: datetime | None):
    """The day rollups of a budget's scope (team, feature, tenant) in [start, end): the smallest cube that
    holds the scope's dimensions."""
    if not budget.tenant:
        granularity = Granularity.DAY_ALL_TENANTS
    else:
        granularity = Granularity.DAY if budget.feature else Granularity.DAY_TENANTS
    rows = UsageRollup.objects.filter(granularity=granularity, bucket_start__gte=start)
    if end is not None:
        rows = rows.filter(bucket_start__lt=end)
    return _in_scope(rows, budget)


def _in_scope(rows, budget: Budget):
    """Rollups or events narrowed to a budget's team, feature and tenant."""
    if budget.team_id:
        rows = rows.filter(team_id=budget.team_id)
    if budget.feature:
        rows = rows.filter(feature=budget.feature)
    if budget.tenant:
        rows = rows.filter(tenant=budget.tenant)
    return rows


def scope_events(budget: Budget, start: datetime, end: datetime | None):
    """The raw ledger events of a budget's scope in [start, end): what a use-case budget counts, since the
    rollups' use-case dimension (migration 0014) lacks the days before it until they are backfilled (a range scan of the period's events: the (team, occurred_at) index for a
    team's budget, the occurred_at BRIN index otherwise)."""
    rows = _in_scope(UsageEvent.objects.filter(occurred_at__gte=start), budget)
    if end is not None:
        rows = rows.filter(occurred_at__lt=end)
    if budget.use_case_id is not None:
        rows = rows.filter(use_case_id=budget.use_case_id)
    return rows


def scope_spend(budget: Budget, start: datetime, end: datetime | None) -> Decimal:
    """Settled spend of a budget's scope in [start, end) (whole days): from the rollups (day buckets), or from
    the raw ledger for a use-case budget."""
    rows = scope_rollups(budget, start, end) if budget.use_case_id is None else scope_events(budget, start, end)
    return rows.aggregate(total=Sum("cost"))["total"] or Decimal(0)


def period_ensure(budget: Budget, at: datetime | None = None) -> BudgetPeriod:
    """The counter row of the period holding `at`, created (with the spend already in the rollups) if new.

    A rolling budget's window is slid forward first, so the counter never counts days that left it.
    """
    at = at or timezone.now()
    bounds = period_bounds(budget.period, at)
    row = BudgetPeriod.objects.filter(budget=budget, period_start=bounds.start).first()
    if row is None:
        with transaction.atomic():
            lock_exclusive()  # the opening balance and the ingests after it must not overlap
            spent = scope_spend(budget, bounds.counted_from, bounds.end)
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO costs_budgetperiod (budget_id, period_start, period_end, window_start, spent, reserved)"
                    " VALUES (%s, %s, %s, %s, %s, 0) ON CONFLICT ON CONSTRAINT budget_period_unique DO NOTHING",
                    [budget.pk, bounds.start, bounds.end, bounds.window_start, spent])
        row = BudgetPeriod.objects.get(budget=budget, period_start=bounds.start)
    if bounds.window_start is not None and row.window_start is not None and row.window_start < bounds.window_start:
        rolling_window_slide(row, bounds.window_start)
        row.refresh_from_db()
    return row


def rolling_window_slide(row: BudgetPeriod, new_start: datetime) -> None:
    """Take the days that left a rolling window out of its counter, under the exclusive rollup lock."""
    with transaction.atomic():
        lock_exclusive()
        current = BudgetPeriod.objects.select_for_update().get(pk=row.pk)
        if current.window_start is None or current.window_start >= new_start:
            return
        budget = current.budget
        leaving = scope_spend(budget, current.window_start, new_start)
        BudgetPeriod.objects.filter(pk=current.pk).update(spent=current.spent - leaving, window_start=new_start)


# --- the call path: reserve before, settle after ------------------------------------------------------------


def reserve(*, request_id: str, team_id, feature: str, tenant: str, model: str,
            worst_case_cost: Decimal | None, use_case_id: int | None = None) -> list[BudgetReservation]:
    """Reserve `worst_case_cost` on every capped budget matching the call, atomically, or raise BudgetExceeded."""
    budgets = matching_budgets(team_id, feature, tenant, use_case_id, capped_only=True)
    if not budgets:
        return []
    if worst_case_cost is None:
        raise BudgetExceeded(
            f"'{model}' has no price, so the hard cap of budget '{budgets[0].name}' cannot be enforced on it. "
            "Ask an admin to add its price (Costs → Prices).", budget=budgets[0])
    if worst_case_cost <= 0:
        return []  # a free call cannot take spend over a cap
    now = timezone.now()
    periods = sorted((period_ensure(b, now) for b in budgets), key=lambda p: p.pk)  # one lock order everywhere
    by_id = {b.pk: b for b in budgets}
    expires = now + timedelta(seconds=conf.reservation_ttl_seconds())
    reservations = []
    with transaction.atomic(), connection.cursor() as cursor:
        for period in periods:
            budget = by_id[period.budget_id]
            cursor.execute(
                "UPDATE costs_budgetperiod SET reserved = reserved + %s "
                "WHERE id = %s AND spent + reserved + %s <= %s RETURNING id",
                [worst_case_cost, period.pk, worst_case_cost, budget.hard_cap])
            if cursor.fetchone() is None:
                period.refresh_from_db()
                raise BudgetExceeded(_refusal_message(budget, period, worst_case_cost), budget=budget)
            reservations.append(BudgetReservation(request_id=request_id[:100], period_id=period.pk,
                                                  amount=worst_case_cost, created_at=now, expires_at=expires))
        BudgetReservation.objects.bulk_create(reservations)
    return reservations


def _refusal_message(budget: Budget, period: BudgetPeriod, worst: Decimal) -> str:
    return refusal_message(budget, used=period.spent + period.reserved, worst=worst, period_end=period.period_end)


def refusal_message(budget: Budget, *, used: Decimal, worst: Decimal, period_end: datetime | None) -> str:
    """Why a hard cap refuses a call, naming the budget (the portal's own calls and the gateway's alike)."""
    when = "" if period_end is None else f" It resets on {period_end:%Y-%m-%d} (UTC)."
    return (f"Budget '{budget.name}' ({budget.scope_label}) would go over its hard cap of ${budget.hard_cap:,.2f}: "
            f"${used:,.4f} is spent or reserved and this call could cost up to ${worst:,.4f}.{when} "
            "A team owner can raise the cap on the Budgets page.")


def settle_begin(cursor, *, inserted: list[dict], settle_request_ids: list[str]) -> tuple[dict, list[Budget]]:
    """The first half of settle_and_count (release reservations, read the budgets), which the ledger runs
    before it writes the rollups: every call of a run updates the same rollup rows, so the less work between
    that upsert and COMMIT, the shorter those row locks serialize concurrent calls."""
    released: dict[int, Decimal] = defaultdict(Decimal)
    if settle_request_ids:
        cursor.execute("DELETE FROM costs_budgetreservation WHERE request_id = ANY(%s) RETURNING period_id, amount",
                       [settle_request_ids])
        for period_id, amount in cursor.fetchall():
            released[period_id] += amount
    return released, active_budgets() if inserted else []


def settle_and_count(cursor, *, inserted: list[dict], settle_request_ids: list[str],
                     begun: tuple[dict, list[Budget]] | None = None) -> list[tuple]:
    """Inside the ledger's transaction: release reservations of recorded calls and add costs to counters.

    `begun`: settle_begin's result, when the ledger ran it earlier in the same transaction.
    Returns [(period_id, budget_id, period_start, spent_before, spent_after)] for threshold checks.
    """
    if begun is None:
        begun = settle_begin(cursor, inserted=inserted, settle_request_ids=settle_request_ids)
    released, budgets = begun
    spends: dict[tuple[int, datetime], list[tuple[datetime, Decimal]]] = defaultdict(list)
    if budgets:
        # Sum by (team, feature, tenant, use case, UTC day) first: periods and rolling windows start on whole days.
        by_scope_day: dict[tuple, Decimal] = defaultdict(Decimal)
        for r in inserted:
            if r["cost"]:
                by_scope_day[(r["team_id"], r["feature"], r["tenant"], r.get("use_case_id"),
                              day_start(r["occurred_at"]))] += r["cost"]
        for (team_id, feature, tenant, use_case_id, day), cost in by_scope_day.items():
            for b in budgets:
                if b.matches(team_id, feature, tenant, use_case_id):
                    spends[(b.pk, period_bounds(b.period, day).start)].append((day, cost))
    deltas: dict[int, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    if spends:
        existing = BudgetPeriod.objects.filter(budget_id__in={b for b, _ in spends},
                                               period_start__in={s for _, s in spends})
        rows = {(p.budget_id, p.period_start): p for p in existing}
        budget_by_id = {b.pk: b for b in budgets}
        for key in sorted(set(spends) - set(rows)):
            row, created = _period_open_in_ledger(cursor, budget_by_id[key[0]], key[1])
            rows[key] = row
            if created:  # its opening balance, read from the rollups this transaction updated, includes them
                spends.pop(key)
        for key, events in spends.items():
            row = rows[key]
            floor = row.window_start  # rolling: events before the window are not counted
            amount = sum((c for at, c in events if floor is None or at >= floor), Decimal(0))
            if amount:
                deltas[row.pk][0] += amount
    for period_id, amount in released.items():
        deltas[period_id][1] += amount
    if not deltas:
        return []
    ids = sorted(deltas)
    cursor.execute("SELECT id FROM costs_budgetperiod WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [ids])
    cursor.execute(
        """
        UPDATE costs_budgetperiod bp SET spent = bp.spent + d.spent, reserved = GREATEST(bp.reserved - d.released, 0)
        FROM unnest(%s::bigint[], %s::numeric[], %s::numeric[]) AS d(id, spent, released)
        WHERE bp.id = d.id
        RETURNING bp.id, bp.budget_id, bp.period_start, bp.spent, d.spent
        """,
        [ids, [deltas[i][0] for i in ids], [deltas[i][1] for i in ids]])
    return [(period_id, budget_id, start, spent - added, spent)
            for period_id, budget_id, start, spent, added in cursor.fetchall() if added]


def _period_open_in_ledger(cursor, budget: Budget, start: datetime) -> tuple[BudgetPeriod, bool]:
    """Create a counter row inside the ledger's transaction (which holds the shared rollup lock).

    Its opening balance is read from the rollups (or, for a use-case budget, the events) as this transaction
    sees them (its own rows included);
    when a concurrent writer created the row first, nothing is inserted and the caller adds its own spend.
    """
    at = start if budget.period != BudgetPeriodKind.ROLLING_30D else timezone.now()
    bounds = period_bounds(budget.period, at)
    spent = scope_spend(budget, bounds.counted_from, bounds.end)
    cursor.execute(
        "INSERT INTO costs_budgetperiod (budget_id, period_start, period_end, window_start, spent, reserved)"
        " VALUES (%s, %s, %s, %s, %s, 0) ON CONFLICT ON CONSTRAINT budget_period_unique DO NOTHING RETURNING id",
        [budget.pk, bounds.start, bounds.end, bounds.window_start, spent])
    created = cursor.fetchone() is not None
    return BudgetPeriod.objects.get(budget=budget, period_start=bounds.start), created


def reservations_sweep(now: datetime | None = None) -> int:
    """Release reservations whose call never recorded its usage (a crashed worker): no budget stays blocked."""
    now = now or timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            WITH gone AS (
                DELETE FROM costs_budgetreservation WHERE expires_at < %s RETURNING period_id, amount
            ), total AS (SELECT period_id, sum(amount) AS amount, count(*) AS n FROM gone GROUP BY period_id)
            UPDATE costs_budgetperiod bp SET reserved = GREATEST(bp.reserved - total.amount, 0)
            FROM total WHERE bp.id = total.period_id
            RETURNING total.n
            """, [now])
        return sum(n for (n,) in cursor.fetchall())


def counters_recount(budget_ids=None) -> int:
    """Set every current counter's `spent` from the rollups, or the events for a use-case budget (after a
    re-pricing or a rollup rebuild)."""
    rows = BudgetPeriod.objects.select_related("budget")
    if budget_ids is not None:
        rows = rows.filter(budget_id__in=budget_ids)
    count = 0
    with transaction.atomic():
        lock_exclusive()
        for period in rows.select_for_update(of=("self",)):
            spent = scope_spend(period.budget, period.window_start or period.period_start, period.period_end)
            if spent != period.spent:
                BudgetPeriod.objects.filter(pk=period.pk).update(spent=spent)
                count += 1
    return count
