"""Budget alerts and cost anomalies: found at ingest (thresholds) and by beat (forecast, anomalies, catch-up).

Each alert is a row with a unique key — (budget, period, kind, threshold) or (day, team, feature) — written
with INSERT … ON CONFLICT DO NOTHING, so however many workers see the same crossing, people hear once.
Recipients: the scope team's owners and viewers (product managers) and the budget's creator; admins for
budgets that span every team. Delivery: the portal inbox and email (apps.notifications.notify).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Sum
from django.db.models.functions import TruncDay
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Membership, Role
from apps.audit.services import audit_record
from apps.core.tasks import task_queue
from apps.costs import conf
from apps.costs.budgets import period_bounds, period_ensure, scope_events, scope_rollups
from apps.costs.forecast import forecast_period
from apps.costs.models import (
    AlertKind,
    Budget,
    BudgetAlert,
    CostAnomaly,
    Granularity,
    UsageRollup,
)
from apps.notifications.services import notify

log = logging.getLogger(__name__)


def _money(value) -> str:
    return f"${Decimal(value):,.2f}"


def _insert_alert(*, budget: Budget, period_start, kind: str, threshold: int, spent, projected, message: str):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO costs_budgetalert (budget_id, period_start, kind, threshold, spent, projected, message, "
            "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT ON CONSTRAINT budget_alert_once DO NOTHING RETURNING id",
            [budget.pk, period_start, kind, threshold, spent, projected, message[:300], timezone.now()])
        row = cursor.fetchone()
    return row[0] if row else None


def thresholds_check(crossings) -> list[int]:
    """Inside the ledger's transaction: alerts for thresholds crossed by this batch. Returns new alert ids."""
    budgets = Budget.objects.select_related("team").in_bulk({c[1] for c in crossings})
    created = []
    for _period_id, budget_id, period_start, before, after in crossings:
        budget = budgets.get(budget_id)
        if budget is None:
            continue
        created += _threshold_alerts(budget, period_start, before, after)
    return created


def _threshold_alerts(budget: Budget, period_start, before, after) -> list[int]:
    crossed = [t for t in sorted(budget.thresholds) if before < budget.amount * t / 100 <= after]
    created = []
    for t in crossed:
        message = (f"Budget '{budget.name}' ({budget.scope_label}) passed {t}%: {_money(after)} of "
                   f"{_money(budget.amount)} spent this period.")
        alert_id = _insert_alert(budget=budget, period_start=period_start, kind=AlertKind.THRESHOLD, threshold=t,
                                 spent=after, projected=None, message=message)
        if alert_id:
            created.append(alert_id)
    if created:
        _audit_and_notify(budget, created)
    return created


def _audit_and_notify(budget: Budget, alert_ids: list[int]) -> None:
    alerts = list(BudgetAlert.objects.filter(pk__in=alert_ids).order_by("threshold"))
    for alert in alerts:
        audit_record(action="budget.alert", obj=budget, object_repr=budget.name,
                     changes={"kind": alert.kind, "threshold": alert.threshold, "spent": alert.spent,
                              "projected": alert.projected, "period_start": alert.period_start})
    last = alerts[-1].pk  # several thresholds crossed at once: one message, about the highest
    transaction.on_commit(lambda: _queue_notify(last))


def _queue_notify(alert_id: int) -> None:
    try:
        task_queue("apps.costs.tasks.budget_alert_notify_task", alert_id)
    except Exception:  # noqa: BLE001 - the broker being down must not fail ingestion; beat re-checks
        log.exception("could not queue the notification of budget alert %s", alert_id)


def recipients_for(team_id) -> list:
    User = get_user_model()
    if team_id is None:
        return list(User.objects.filter(is_staff=True, is_active=True))
    ids = Membership.objects.filter(team_id=team_id, role__in=[Role.OWNER, Role.VIEWER]).values("user_id")
    return list(User.objects.filter(pk__in=ids, is_active=True))


def budget_alert_notify(alert_id: int) -> int:
    alert = BudgetAlert.objects.select_related("budget", "budget__created_by").filter(pk=alert_id).first()
    if alert is None:
        return 0
    budget = alert.budget
    people = recipients_for(budget.team_id)
    if budget.created_by_id:
        people.append(budget.created_by)
    title = (f"Budget '{budget.name}' passed {alert.threshold}%" if alert.kind == AlertKind.THRESHOLD
             else f"Budget '{budget.name}' is forecast to go over")
    created = notify(users=people, kind=f"budget.{alert.kind}", title=title, body=alert.message,
                     link=reverse("costs:budget_list"),
                     dedupe_key=f"budget-alert:{budget.pk}:{alert.period_start:%Y%m%d}:{alert.kind}:{alert.threshold}")
    return len(created)


# --- the beat jobs ------------------------------------------------------------------------------------------


def _daily_spend(budget: Budget, start: date, end: date) -> dict[date, float]:
    since, until = _midnight(start), _midnight(end) + timedelta(days=1)
    if budget.use_case_id is not None:  # raw events, by UTC day (see budgets.scope_events)
        rows = (scope_events(budget, since, until).annotate(bucket_start=TruncDay("occurred_at", tzinfo=UTC))
                .values("bucket_start"))
    else:
        rows = scope_rollups(budget, since, until).values("bucket_start")
    return {r["bucket_start"].date(): float(r["cost"] or 0) for r in rows.annotate(cost=Sum("cost")).order_by()}


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def budgets_check(now: datetime | None = None) -> dict:
    """Every active budget: open the current period, send missed threshold alerts, and forecast alerts."""
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    sent = {"threshold": 0, "forecast": 0}
    for budget in Budget.objects.filter(is_active=True).select_related("team"):
        period = period_ensure(budget, now)
        with transaction.atomic():
            sent["threshold"] += len(_threshold_alerts(budget, period.period_start, Decimal("-1"), period.spent))
        if period.period_end is None:
            continue  # rolling windows have no end to forecast
        if period.spent >= budget.amount:
            continue  # already over: the 100% alert said so
        bounds = period_bounds(budget.period, now)
        end_day = (bounds.end - timedelta(days=1)).date()
        daily = _daily_spend(budget, today - timedelta(days=28), today)
        result = forecast_period(daily, today=today, period_start=bounds.start.date(),
                                 period_end=end_day + timedelta(days=1))
        if result.projected > float(budget.amount) and (today - bounds.start.date()).days >= 3:
            message = (f"Budget '{budget.name}' ({budget.scope_label}) is forecast to reach "
                       f"{_money(result.projected)} by {end_day:%Y-%m-%d} (80% range {_money(result.low)}–"
                       f"{_money(result.high)}), over its {_money(budget.amount)}.")
            with transaction.atomic():
                alert_id = _insert_alert(budget=budget, period_start=period.period_start, kind=AlertKind.FORECAST,
                                         threshold=0, spent=period.spent,
                                         projected=Decimal(str(round(result.projected, 6))), message=message)
                if alert_id:
                    _audit_and_notify(budget, [alert_id])
                    sent["forecast"] += 1
    return sent


def anomalies_detect(now: datetime | None = None) -> list[CostAnomaly]:
    """Today's spend per team and per (team, feature) against the 7 days before: factor × average and a floor."""
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    start = datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=7)
    rows = (UsageRollup.objects.filter(granularity=Granularity.DAY_ALL_TENANTS, bucket_start__gte=start,
                                       bucket_start__lt=start + timedelta(days=8))
            .values("bucket_start", "team_id", "feature").annotate(cost=Sum("cost")).order_by())
    per_feature: dict[tuple, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for r in rows:
        day = r["bucket_start"].date()
        per_feature[(r["team_id"], r["feature"])][day] += r["cost"]
        per_feature[(r["team_id"], None)][day] += r["cost"]  # the team as a whole
    factor, floor = conf.anomaly_factor(), conf.anomaly_min_amount()
    found = []
    for (team_id, feature), days in per_feature.items():
        spend = days.get(today, Decimal(0))
        baseline = sum((v for d, v in days.items() if d != today), Decimal(0)) / 7
        if spend < floor or spend <= factor * baseline:
            continue
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO costs_costanomaly (day, team_id, feature, spend, baseline, created_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT ON CONSTRAINT cost_anomaly_once DO NOTHING "
                    "RETURNING id", [today, team_id, feature or "", spend, baseline, timezone.now()])
                row = cursor.fetchone()
            if row is None:
                # Already reported today: keep its figures current without a second message.
                CostAnomaly.objects.filter(day=today, team_id=team_id, feature=feature or "").update(spend=spend)
                continue
            anomaly = CostAnomaly.objects.select_related("team").get(pk=row[0])
            audit_record(action="cost.anomaly", obj=anomaly, team=team_id,
                         object_repr=f"{anomaly.team or 'no team'} {feature or ''}".strip(),
                         changes={"day": today, "feature": feature or "", "spend": spend, "baseline": baseline})
            transaction.on_commit(lambda pk=anomaly.pk: _queue_anomaly(pk))
            found.append(anomaly)
    return found


def _queue_anomaly(anomaly_id: int) -> None:
    try:
        task_queue("apps.costs.tasks.cost_anomaly_notify_task", anomaly_id)
    except Exception:  # noqa: BLE001
        log.exception("could not queue the notification of cost anomaly %s", anomaly_id)


def cost_anomaly_notify(anomaly_id: int) -> int:
    anomaly = CostAnomaly.objects.select_related("team").filter(pk=anomaly_id).first()
    if anomaly is None:
        return 0
    what = f"{anomaly.team or 'Unattributed usage'}" + (f" · {anomaly.feature}" if anomaly.feature else "")
    ratio = f"{anomaly.ratio:.1f}×" if anomaly.ratio else "far above"
    body = (f"{what} spent {_money(anomaly.spend)} on {anomaly.day:%Y-%m-%d} (UTC), {ratio} its 7-day average of "
            f"{_money(anomaly.baseline)}.")
    created = notify(users=recipients_for(anomaly.team_id), kind="cost.anomaly", title=f"Cost anomaly: {what}",
                     body=body, link=reverse("costs:dashboard"), dedupe_key=f"cost-anomaly:{anomaly.pk}")
    return len(created)


