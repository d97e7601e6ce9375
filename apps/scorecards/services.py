"""Writes of the scorecards: the refresh (Celery, every 4 minutes and on demand), targets and target users (the
owner's, audited, with history), and the incident suggestion when a KPI starts missing its target."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from datetime import datetime, timedelta
from functools import lru_cache
from statistics import median
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from apps.accounts.permissions import Action, can, is_admin
from apps.audit.services import audit_record
from apps.core.tasks import task_queue
from apps.notifications.services import notify
from apps.reviews.models import State, UseCase
from apps.scorecards import sources
from apps.scorecards.facts import UseCaseFacts, Window, trend_windows
from apps.scorecards.kpis import KPIS, Kpi, Measure, display, display_target, status_of, target_for
from apps.scorecards.models import (
    STATUS_ORDER,
    KpiTarget,
    KpiValue,
    ScorecardProfile,
    ScorecardRollup,
    ScorecardSnapshot,
    Status,
    TargetChange,
)

log = logging.getLogger(__name__)
RECOMPUTE_AFTER = timedelta(hours=1)  # a scorecard without new data is recomputed at least this often
RECOMPUTE_SHARE = 12  # ... at most 1/12 of the portfolio per pass for that reason (oldest first): the load spreads
CHANGE_SLACK = timedelta(minutes=2)  # data stamped this long before a computation may not have been committed yet
SCORED_STATES = [s for s in State.values if s not in (State.DRAFT, State.WITHDRAWN, State.REJECTED, State.RETIRED)]
REFRESH_TASK = "apps.scorecards.tasks.scorecards_refresh_task"


# --- computing ------------------------------------------------------------------------------------------------

def kpi_targets(use_case_ids) -> dict[int, dict[str, float]]:
    out: dict = defaultdict(dict)
    for uc, kpi, value in KpiTarget.objects.filter(use_case_id__in=list(use_case_ids)).values_list(
            "use_case_id", "kpi", "value"):
        out[uc][kpi] = value
    return out


def evaluate(kpi: Kpi, facts: UseCaseFacts, window: Window, target: float | None) -> tuple[Measure, Status]:
    """One KPI of one use case over one window, and its status against `target`."""
    measure = kpi.compute(facts, window)
    previous = kpi.compute(facts, window.previous()).value if kpi.mode == "change" else None
    return measure, status_of(kpi, measure, target, previous)


@lru_cache(maxsize=4096)
def _url(name: str, arg: int | None = None) -> str:  # the refresh links 8,000 KPIs: reverse each page once
    return reverse(name, args=[] if arg is None else [arg])


def source_url(kpi: Kpi, facts: UseCaseFacts, window: Window) -> str:
    """The existing page with the data behind the KPI."""
    kind = kpi.source
    if kind == "gateway_errors" and facts.availability_slo is not None:
        return facts.availability_slo.url
    if kind in ("gateway_key", "gateway_errors") and facts.key_ids:
        query = {"key": facts.key_ids[0], **({"status": "error"} if kind == "gateway_errors" else {})}
        return f"{_url('gateway:requests')}?{urlencode(query)}"
    if kind == "feedback":
        return _url("evals:feedback_list")
    if kind == "eval_run":
        runs = [r for r in facts.eval_runs if r.finished_at < window.end]
        return _url("evals:run_detail", runs[-1].run_id) if runs else _url("evals:run_list")
    if kind == "eval_gates":
        return _url("evals:gate_list")
    if kind == "collection" and facts.collection_ids:
        return _url("rag:collection", facts.collection_ids[0])
    if kind == "incidents":
        return _url("incidents:list")
    if kind == "experiments":
        return _url("experiments:list")
    return _url("reviews:detail", facts.use_case_id)


def _scored_use_cases(use_case_ids=None):
    qs = UseCase.objects.filter(state__in=SCORED_STATES)
    if use_case_ids is not None:
        qs = qs.filter(pk__in=list(use_case_ids))
    return list(qs.values_list("pk", "team_id", "tier"))


def _score(f: UseCaseFacts, targets: dict, windows: list[Window], snapshot: ScorecardSnapshot, now: datetime):
    """One use case's KPI values, its snapshot's summary fields (set in place), and the KPIs that just turned
    missed."""
    current = windows[-1]
    counts: dict = defaultdict(int)
    cells, values, newly_missed = {}, [], []
    for kpi in KPIS.values():
        target = target_for(kpi, f, targets)
        measure, status = evaluate(kpi, f, current, target)
        counts[status] += 1
        cells[kpi.key] = [status, display(kpi, measure.value)]
        was = (snapshot.cells or {}).get(kpi.key, [None])[0] if snapshot.pk else None
        if status == Status.MISSED and was not in (None, Status.MISSED):
            newly_missed.append((f.use_case_id, kpi, measure, target))
        values.append(KpiValue(
            kpi=kpi.key, value=measure.value, target=target, status=status,
            ci_low=measure.ci[0] if measure.ci else None, ci_high=measure.ci[1] if measure.ci else None,
            sample=measure.sample, numerator=measure.numerator, denominator=measure.denominator,
            detail=(measure.detail or kpi.feed)[:500], source_url=source_url(kpi, f, current)[:500],
            trend=[[w.end.date().isoformat(), kpi.compute(f, w).value] for w in windows], computed_at=now))
    snapshot.team_id, snapshot.tier, snapshot.computed_at = f.team_id, f.tier, now
    snapshot.window_days = (current.end - current.start).days
    snapshot.met, snapshot.at_risk = counts[Status.MET], counts[Status.AT_RISK]
    snapshot.missed, snapshot.no_data = counts[Status.MISSED], counts[Status.NO_DATA]
    snapshot.status = min((s for s in counts if s != Status.NO_TARGET), key=lambda s: STATUS_ORDER[s],
                          default=Status.NO_DATA)
    snapshot.cells = cells
    return values, newly_missed


def scorecards_refresh(*, use_case_ids=None, now: datetime | None = None) -> int:
    """Recompute the scorecards (all scored use cases, or these) and the roll-ups. Returns how many."""
    now = now or timezone.now()
    windows = trend_windows(now)
    facts = sources.collect(_scored_use_cases(use_case_ids), windows)
    targets = kpi_targets(facts)
    old = {s.use_case_id: s for s in ScorecardSnapshot.objects.filter(use_case_id__in=list(facts))}
    snapshots, values, newly_missed = [], {}, []
    for uc, f in facts.items():
        snapshot = old.get(uc) or ScorecardSnapshot(use_case_id=uc, team_id=f.team_id)
        values[uc], missed = _score(f, targets[uc], windows, snapshot, now)
        newly_missed += missed
        snapshots.append(snapshot)
    with transaction.atomic():
        ScorecardSnapshot.objects.bulk_create(
            snapshots, update_conflicts=True, unique_fields=["use_case"],
            update_fields=["team_id", "tier", "computed_at", "window_days", "met", "at_risk", "missed", "no_data",
                           "status", "cells"])
        ids = dict(ScorecardSnapshot.objects.filter(use_case_id__in=list(facts)).values_list("use_case_id", "pk"))
        KpiValue.objects.filter(snapshot_id__in=list(ids.values())).delete()
        for uc, rows in values.items():
            for value in rows:
                value.snapshot_id = ids[uc]
        KpiValue.objects.bulk_create([v for rows in values.values() for v in rows], batch_size=2000)
        rollups_refresh(now=now)
    for uc, kpi, measure, target in newly_missed:
        _suggest_incident(uc, kpi, measure, target, now)
    return len(facts)


def scorecards_due(*, now: datetime) -> list[int]:
    """The use cases the next pass recomputes: never computed, team or tier changed, something they read changed
    since their last computation (sources.changed_since), and — at most a 12th of the portfolio, oldest first —
    those computed over an hour ago (a day leaving the window, freshness ageing, a link removed)."""
    scored = _scored_use_cases()
    done = {uc: (at, team, tier) for uc, at, team, tier in ScorecardSnapshot.objects.filter(
        use_case_id__in=[uc for uc, _t, _r in scored]).values_list("use_case_id", "computed_at", "team_id", "tier")}
    due = {uc for uc, team, tier in scored if uc not in done or done[uc][1:] != (team, tier)}
    known = [uc for uc, _t, _r in scored if uc not in due]
    if known:
        since = max(min(done[uc][0] for uc in known), now - RECOMPUTE_AFTER) - CHANGE_SLACK
        latest = sources.changed_since(known, since)
        due |= {uc for uc, at in latest.items() if at >= done[uc][0] - CHANGE_SLACK}
        old = sorted((done[uc][0], uc) for uc in known if uc not in due and done[uc][0] <= now - RECOMPUTE_AFTER)
        due |= {uc for _at, uc in old[:math.ceil(len(scored) / RECOMPUTE_SHARE)]}
    return sorted(due)


def scorecards_refresh_due(*, now: datetime | None = None) -> int:
    """The beat's pass: recompute only the use cases `scorecards_due` names (then the roll-ups). Returns how many."""
    now = now or timezone.now()
    due = scorecards_due(now=now)
    return scorecards_refresh(use_case_ids=due, now=now) if due else 0


def rollups_refresh(*, now: datetime) -> None:
    """Team and portfolio roll-ups from the stored KPI values: statuses counted, rates pooled (sum of numerators
    over sum of denominators), other KPIs the median of the use cases that have data."""
    rows = KpiValue.objects.values_list("snapshot__team_id", "kpi", "status", "value", "numerator", "denominator")
    groups: dict = defaultdict(lambda: defaultdict(list))
    members: dict = defaultdict(set)
    for team, kpi, status, value, num, den in rows.iterator(chunk_size=5000):
        for scope in (("team", team), ("portfolio", None)):
            groups[scope][kpi].append((status, value, num, den))
    for team, uc in ScorecardSnapshot.objects.values_list("team_id", "use_case_id"):
        members[("team", team)].add(uc)
        members[("portfolio", None)].add(uc)
    rollups = []
    for (scope, team), kpis in groups.items():
        out = {}
        for key, entries in kpis.items():
            kpi = KPIS.get(key)
            if kpi is None:
                continue
            counts = defaultdict(int)
            for status, *_ in entries:
                counts[status] += 1
            pooled = [(n, d) for _s, v, n, d in entries if v is not None and n is not None and d]
            values = [v for _s, v, *_ in entries if v is not None]
            if pooled and kpi.unit in ("ratio", "growth", "usd", "tokens") and key != "adoption":
                value = sum(n for n, _ in pooled) / sum(d for _, d in pooled)
            else:
                value = median(values) if values else None
            out[key] = {"value": value, "display": display(kpi, value), **{s: counts[s] for s in Status.values}}
        rollups.append(ScorecardRollup(scope=scope, team_id=team, kpis=out, use_cases=len(members[(scope, team)]),
                                       computed_at=now))
    ScorecardRollup.objects.all().delete()
    ScorecardRollup.objects.bulk_create(rollups)


def scorecard_refresh_request(*, actor, use_case) -> None:
    """Someone asked for a fresh scorecard now: queue it after the commit (the page shows the old one meanwhile)."""
    pk = use_case.pk
    transaction.on_commit(lambda: _queue_refresh([pk]))


def _queue_refresh(ids) -> None:
    try:
        task_queue(REFRESH_TASK, ids)
    except Exception:  # noqa: BLE001 - a broker outage: the 5-minute beat refreshes it anyway
        log.warning("could not queue a scorecard refresh of %s", ids)


def _suggest_incident(uc: int, kpi: Kpi, measure: Measure, target, now: datetime) -> None:
    """A KPI that just started missing: tell the owner, with a link to declare an incident prefilled. Never opens
    one by itself (docs/scorecards.md)."""
    use_case = UseCase.objects.select_related("team", "business_owner").filter(pk=uc).first()
    if use_case is None or use_case.business_owner is None:
        return
    title = f"{use_case.title}: {kpi.label} missed its target"
    query = urlencode({"team": use_case.team.slug, "title": title[:200], "use_cases": str(uc), "severity": 3,
                       "kind": "other", "summary": f"{kpi.label} is {display(kpi, measure.value)} against "
                                                  f"{display_target(kpi, target)}. {measure.detail}"[:1000]})
    notify(users=[use_case.business_owner], kind="scorecards.kpi_missed", title=title[:200],
           body=f"{kpi.label} is {display(kpi, measure.value)} (target {display_target(kpi, target)}). "
                f"Open an incident if it needs one: {reverse('incidents:declare')}?{query}",
           link=f"{reverse('scorecards:use_case', args=[uc])}#kpi-{kpi.key}",
           dedupe_key=f"scorecards:missed:{uc}:{kpi.key}:{now:%Y-%m-%d}")


# --- targets ----------------------------------------------------------------------------------------------------

def may_edit_targets(actor, use_case) -> bool:
    """The use case's business owner, its team's owners, and admins; not engineers, viewers or the council."""
    if is_admin(actor):
        return True
    user_id = getattr(actor, "pk", None)
    return (user_id is not None and use_case.business_owner_id == user_id and can(actor, Action.VIEW, use_case)) \
        or can(actor, Action.MANAGE, use_case)


def _require_editor(actor, use_case) -> None:
    if not may_edit_targets(actor, use_case):
        raise PermissionDenied("Only the use case's business owner or its team's owners may change its targets.")


def _label(actor) -> str:
    return actor.get_username() if hasattr(actor, "get_username") else str(actor)


@transaction.atomic
def kpi_target_set(*, actor, use_case, kpi: str, value: float | None, reason: str = "") -> TargetChange | None:
    """Set one KPI's target (None: back to the tier default). Records who, when, old and new, and an audit event.
    Returns the change, or None when nothing changed."""
    _require_editor(actor, use_case)
    definition = KPIS.get(kpi)
    if definition is None:
        raise ValidationError({"kpi": [f"Unknown KPI {kpi!r}."]})
    if value is not None:
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValidationError({"value": ["The target must be a number."]}) from None
        if value != value or value in (float("inf"), float("-inf")) or value < 0:
            raise ValidationError({"value": ["The target must be a number of at least 0."]})
        if definition.unit == "ratio" and definition.mode == "absolute" and value > 1 and kpi != "adoption":
            raise ValidationError({"value": ["A rate's target is between 0 and 1 (0.95 = 95 %)."]})
    current = KpiTarget.objects.select_for_update().filter(use_case=use_case, kpi=kpi).first()
    old = current.value if current else None
    if old == value:
        return None
    if value is None:
        current.delete()
    else:
        KpiTarget.objects.update_or_create(use_case=use_case, kpi=kpi, defaults={
            "value": value, "updated_by": actor, "updated_at": timezone.now()})
    change = TargetChange.objects.create(use_case=use_case, kpi=kpi, old_value=old, new_value=value,
                                         reason=reason[:500], actor=actor, actor_label=_label(actor))
    audit_record(action="scorecards.target_set", obj=use_case, actor=actor,
                 changes={"kpi": kpi, "target": [old, value], "reason": reason[:500]})
    transaction.on_commit(lambda: _queue_refresh([use_case.pk]))
    return change


@transaction.atomic
def target_users_set(*, actor, use_case, target_users: int | None, reason: str = "") -> TargetChange | None:
    """How many end users the feature is for (adoption's denominator)."""
    _require_editor(actor, use_case)
    if target_users is not None:
        try:
            target_users = int(target_users)
        except (TypeError, ValueError):
            raise ValidationError({"target_users": ["Target users must be a whole number."]}) from None
        if not 1 <= target_users <= 1_000_000_000:
            raise ValidationError({"target_users": ["Target users must be between 1 and 1,000,000,000."]})
    profile, _created = ScorecardProfile.objects.select_for_update().get_or_create(use_case=use_case)
    old = profile.target_users
    if old == target_users:
        return None
    profile.target_users = target_users
    profile.save(update_fields=["target_users"])
    change = TargetChange.objects.create(use_case=use_case, kpi="target_users", old_value=old,
                                         new_value=target_users, reason=reason[:500], actor=actor,
                                         actor_label=_label(actor))
    audit_record(action="scorecards.target_users_set", obj=use_case, actor=actor,
                 changes={"target_users": [old, target_users], "reason": reason[:500]})
    transaction.on_commit(lambda: _queue_refresh([use_case.pk]))
    return change
