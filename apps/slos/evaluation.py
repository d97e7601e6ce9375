"""The every-minute evaluation of every active SLO: SLI over the window, remaining error budget, burn rates over
the alert windows, and the multiwindow, multi-burn-rate alerts (apps/slos/policy.py).

One pass reads the gateway's SLI counts once per window length for all use cases (apps/gateway/sli.py: whole
hours from the hourly table, the partial hours at the ends from the minute table), computes each SLO in Python,
writes the evaluation onto the SLO rows, then opens and resolves alerts:

- a pair that fires and has no open alert on that SLO opens one (a ticket waits while a page pair fires) (at most one open per SLO and pair: a partial
  unique index, and a transaction-scoped advisory lock so two evaluators never run at once): the use case's
  business owner and the team's engineers and owners are told (inbox; e-mail too for a page), an audit event is
  written and, for the fast pair of an SLO that asks for it, an incident is declared (apps.incidents.services);
- an open alert whose pair no longer fires (or whose SLO was turned off) is resolved, with a resolved notice
  and an audit event. The incident, if any, stays with its people.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone

from apps.accounts.models import Membership, Role
from apps.audit.services import audit_record
from apps.costs.db import execute_fast
from apps.gateway.sli import SliCounts, sli_window
from apps.incidents.models import IncidentType
from apps.incidents.services import incident_declare
from apps.notifications.services import notify
from apps.slos import policy
from apps.slos.models import Health, Kind, Slo, SloAlert

log = logging.getLogger(__name__)
LOCK_ID = 0x510_0105  # pg advisory lock: one evaluation at a time
_UPDATE = f"""
UPDATE {Slo._meta.db_table} AS s SET health = x.health, sli_percent = x.sli, budget_remaining = x.remaining,
       valid_events = x.valid, bad_events = x.bad, burn_rates = x.burns::jsonb, evaluated_at = %s
  FROM unnest(%s::bigint[], %s::text[], %s::float8[], %s::float8[], %s::bigint[], %s::bigint[], %s::text[])
       AS x(id, health, sli, remaining, valid, bad, burns)
 WHERE s.id = x.id
"""


@dataclass
class Summary:
    evaluated: int = 0
    opened: int = 0
    resolved: int = 0
    skipped: bool = False  # another evaluator held the lock


def floor_minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def valid_and_bad(slo: Slo, counts: SliCounts | None) -> tuple[int, int]:
    """The SLO's valid and bad events in one window's counts."""
    if counts is None:
        return 0, 0
    if slo.kind == Kind.LATENCY:
        return counts.answered, counts.slow_over(slo.threshold_ms)
    return counts.requests, counts.bad


def assess(slo: Slo, window: SliCounts | None, alert_windows: dict[str, SliCounts | None], *,
           min_events: int) -> tuple[dict, list[policy.Pair]]:
    """The evaluation fields of one SLO and the pairs that fire, from its counts (pure: the tests call it)."""
    budget = slo.error_budget
    valid, bad = valid_and_bad(slo, window)
    burns, valids = {}, {}
    for name in policy.WINDOWS:
        v, b = valid_and_bad(slo, alert_windows.get(name))
        valids[name], burns[name] = v, round(policy.burn_rate(b, v, budget), 4)
    firing = [pair for pair in policy.PAIRS if policy.fires(pair, burns, valids, min_events=min_events)]
    remaining = policy.budget_remaining(bad, valid, budget)
    if not valid:
        health = Health.NO_DATA
    elif any(p.severity == "page" for p in firing):
        health = Health.PAGE
    elif remaining is not None and remaining <= 0:
        health = Health.EXHAUSTED
    elif firing:
        health = Health.TICKET
    else:
        health = Health.OK
    fields = {"health": health, "valid_events": valid, "bad_events": bad, "burn_rates": burns,
              "sli_percent": 100 * (1 - bad / valid) if valid else None, "budget_remaining": remaining}
    return fields, firing


def slos_evaluate(*, now: datetime | None = None, slo_ids=None) -> Summary:
    """Evaluate the active SLOs (all, or `slo_ids`), then open and resolve their alerts."""
    end = floor_minute(now or timezone.now())
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_ID])
            if not cursor.fetchone()[0]:
                return Summary(skipped=True)
        slos = Slo.objects.select_related("use_case", "team", "created_by", "updated_by")
        if slo_ids is not None:
            slos = slos.filter(pk__in=list(slo_ids))
        slos = list(slos)
        active = [slo for slo in slos if slo.is_active]
        summary = Summary(evaluated=len(active))
        use_case_ids = {slo.use_case_id for slo in active}
        thresholds = {slo.threshold_ms for slo in active if slo.kind == Kind.LATENCY}
        counts = {length: sli_window(use_case_ids, start=end - length, end=end, thresholds=thresholds)
                  for length in {*policy.WINDOWS.values(), *(timedelta(days=s.window_days) for s in active)}}
        open_alerts = {(a.slo_id, a.pair): a for a in SloAlert.objects.select_for_update()
                       .filter(slo__in=slos, resolved_at__isnull=True)}
        firing_by_slo = {}
        for slo in active:
            window = counts[timedelta(days=slo.window_days)].get(slo.use_case_id)
            alert_windows = {name: counts[length].get(slo.use_case_id) for name, length in policy.WINDOWS.items()}
            fields, firing = assess(slo, window, alert_windows, min_events=settings.SLO_ALERT_MIN_EVENTS)
            for name, value in fields.items():
                setattr(slo, name, value)
            slo.evaluated_at = end
            firing_by_slo[slo.pk] = firing
        _write_evaluations(active, end)
        for slo in slos:
            firing = {pair.key: pair for pair in firing_by_slo.get(slo.pk, [])}
            paging = any(pair.severity == "page" for pair in firing.values())
            for pair in policy.PAIRS:
                alert = open_alerts.get((slo.pk, pair.key))
                if pair.key in firing and alert is None:
                    if pair.severity == "ticket" and paging:
                        continue  # inhibited: the page says more (Alertmanager's inhibit rule)
                    _alert_open(slo, pair, at=end)
                    summary.opened += 1
                elif pair.key in firing:
                    _alert_peak(alert, slo.burn_rates.get(pair.long, 0.0))
                elif alert is not None:
                    _alert_resolve(alert, slo, pair, at=end, why="" if slo.is_active else "The SLO was turned off.")
                    summary.resolved += 1
    return summary


def _write_evaluations(slos: list[Slo], at: datetime) -> None:
    """One UPDATE for every SLO's evaluation fields (Django's bulk_update builds a CASE per row and field: seconds
    for a thousand SLOs)."""
    if slos:
        execute_fast(_UPDATE, [at, [s.pk for s in slos], [s.health for s in slos], [s.sli_percent for s in slos],
                               [s.budget_remaining for s in slos], [s.valid_events for s in slos],
                               [s.bad_events for s in slos], [json.dumps(s.burn_rates) for s in slos]])


# -- alerts -----------------------------------------------------------------------------------------------------
def recipients(slo: Slo) -> list:
    """The use case's business owner and its team's engineers and owners."""
    people = [m.user for m in Membership.objects.filter(team_id=slo.team_id, role__in=[Role.OWNER, Role.ENGINEER])
              .select_related("user")]
    owner = slo.use_case.business_owner
    return [owner, *people] if owner is not None else people


def _describe(slo: Slo, pair: policy.Pair) -> str:
    burns = slo.burn_rates
    remaining = "no data" if slo.budget_remaining is None else f"{slo.budget_remaining:.0%}"
    return (f"{pair.label}: the error budget burns at {burns.get(pair.long, 0):.1f}× over {pair.long} and "
            f"{burns.get(pair.short, 0):.1f}× over {pair.short} (alert at {pair.rate:g}×). "
            f"Budget left over {slo.window_days} days: {remaining}.")


def _alert_open(slo: Slo, pair: policy.Pair, *, at: datetime) -> SloAlert:
    burns = slo.burn_rates
    alert = SloAlert.objects.create(slo=slo, pair=pair.key, severity=pair.severity, opened_at=at,
                                    long_burn=burns.get(pair.long, 0.0), short_burn=burns.get(pair.short, 0.0),
                                    peak_burn=burns.get(pair.long, 0.0))
    text = _describe(slo, pair)
    if pair.key == "fast" and slo.open_incident:
        _incident_open(alert, slo, text)
    notify(users=recipients(slo), kind=f"slo.{pair.severity}",
           title=f"SLO {pair.label.lower()}: {slo.use_case.title} — {slo.objective}"[:200],
           body=text + (f"\nIncident {alert.incident.reference} was declared." if alert.incident else ""),
           link=slo.get_absolute_url(), dedupe_key=f"slo-alert:{alert.pk}:open", email=pair.severity == "page")
    audit_record(action="slo.alert.open", obj=alert, team=slo.team,
                 changes={"slo": slo.pk, "pair": pair.key, "severity": pair.severity, "long_burn": alert.long_burn,
                          "short_burn": alert.short_burn, "incident": alert.incident_id, "note": alert.note})
    return alert


def _incident_open(alert: SloAlert, slo: Slo, text: str) -> None:
    """Declare the incident in the name of whoever last set the SLO to open one (they asked for it); if they may
    no longer declare for the team, the alert says so and pages as usual."""
    declarant = slo.updated_by or slo.created_by
    try:
        with transaction.atomic():
            alert.incident = incident_declare(
                actor=declarant, team=slo.team, title=f"SLO fast burn: {slo.use_case.title}"[:200],
                kind=IncidentType.OTHER, severity=slo.incident_severity, use_cases=[slo.use_case_id],
                commander=slo.use_case.business_owner_id or getattr(declarant, "pk", None),
                summary=f"Opened by the SLO \"{slo.objective}\" on its fast-burn alert. {text}")
    except (PermissionDenied, ValidationError) as exc:
        alert.note = f"No incident was opened: {' '.join(getattr(exc, 'messages', [str(exc)]))}"[:300]
        log.warning("SLO %s: fast burn, incident not opened (%s)", slo.pk, alert.note)
    alert.save(update_fields=["incident", "note"])


def _alert_peak(alert: SloAlert, burn: float) -> None:
    if burn > alert.peak_burn:
        SloAlert.objects.filter(pk=alert.pk).update(peak_burn=burn)


def _alert_resolve(alert: SloAlert, slo: Slo, pair: policy.Pair, *, at: datetime, why: str = "") -> None:
    alert.resolved_at = at
    alert.save(update_fields=["resolved_at"])
    notify(users=recipients(slo), kind=f"slo.{pair.severity}.resolved",
           title=f"Resolved: SLO {pair.label.lower()} on {slo.use_case.title} — {slo.objective}"[:200],
           body=why or f"Both windows ({pair.long}, {pair.short}) are below {pair.rate:g}× again.",
           link=slo.get_absolute_url(), dedupe_key=f"slo-alert:{alert.pk}:resolved", email=pair.severity == "page")
    audit_record(action="slo.alert.resolve", obj=alert, team=slo.team,
                 changes={"slo": slo.pk, "pair": pair.key, "opened_at": alert.opened_at.isoformat(),
                          "peak_burn": alert.peak_burn})
