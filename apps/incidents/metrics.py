"""Incident figures (ADR 0084): counts, time to mitigate and to resolve (MTTR), regression escapes.

    incident_metrics(use_case_ids=None, since=None, until=None) -> IncidentMetrics

is the selector other apps read (the scorecards' KPI for a use case): incidents *detected* in [since, until) that
affect any of `use_case_ids` (None: every incident). It does not restrict by person: the caller shows figures
only for use cases its reader may see. The incidents metrics page (`/incidents/metrics/`) uses the same
figures over the incidents its reader may see (selectors._visible), by severity, team, use case and month.

Definitions:
- time to mitigate = mitigated_at − detected_at; time to resolve (MTTR) = resolved_at − detected_at, in minutes,
  over the incidents that have the later time (an open incident does not count yet); medians (and means);
  an incident counts in the UTC month of its detection.
- regression escape = an incident whose review says a release caused it (PostIncidentReview.regression_escape);
  production promotions = prompt label moves to `production` in the window (of the use cases' linked prompts);
  escape rate = escapes / promotions.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from statistics import mean, median

from django.db.models import CharField, DurationField, ExpressionWrapper, F, FloatField, Func, QuerySet, Value
from django.db.models.functions import Extract
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.permissions import Action, sees_everything, teams_for
from apps.incidents import selectors
from apps.incidents.models import ACTION_OPEN_STATUSES, ActionItem, Incident, Severity
from apps.prompts.models import PRODUCTION, LabelEvent
from apps.reviews.models import UseCasePrompt

# The seed's goal for Sev1/Sev2: restored within 60–120 minutes (median time to mitigate).
TARGET_MINUTES = {Severity.SEV1: 60, Severity.SEV2: 120}


def minutes_between(start: datetime, end: datetime | None) -> float | None:
    """Minutes from `start` to `end` (None while `end` is empty)."""
    return None if end is None else (end - start).total_seconds() / 60


@dataclass
class Durations:
    """Minutes from detection to mitigation (ttm) and to resolution (ttr) of a group of incidents."""

    count: int = 0
    ttm: list[float] = field(default_factory=list)
    ttr: list[float] = field(default_factory=list)

    @property
    def ttm_median(self) -> float | None:
        return round(median(self.ttm), 1) if self.ttm else None

    @property
    def ttr_median(self) -> float | None:
        return round(median(self.ttr), 1) if self.ttr else None

    @property
    def ttm_mean(self) -> float | None:
        return round(mean(self.ttm), 1) if self.ttm else None

    @property
    def ttr_mean(self) -> float | None:
        return round(mean(self.ttr), 1) if self.ttr else None

    def add(self, ttm: float | None, ttr: float | None) -> None:
        """One incident: its minutes to mitigate and to resolve (None: not yet)."""
        self.count += 1
        if ttm is not None:
            self.ttm.append(max(0.0, ttm))
        if ttr is not None:
            self.ttr.append(max(0.0, ttr))

    def add_times(self, detected_at: datetime, mitigated_at: datetime | None, resolved_at: datetime | None) -> None:
        """One incident from its times (the scorecards' facts): the same minutes as `_minutes` takes in SQL."""
        self.add(minutes_between(detected_at, mitigated_at), minutes_between(detected_at, resolved_at))

    def as_dict(self) -> dict:
        return {"count": self.count, "mitigate_median_minutes": self.ttm_median,
                "resolve_median_minutes": self.ttr_median, "mitigate_mean_minutes": self.ttm_mean,
                "resolve_mean_minutes": self.ttr_mean}


@dataclass
class IncidentMetrics:
    since: datetime | None
    until: datetime | None
    total: Durations
    by_severity: dict[int, Durations]
    by_kind: dict[str, int]
    by_team: dict[str, Durations]
    by_use_case: dict[str, Durations]
    by_month: dict[str, Durations]
    severity_by_month: dict[str, dict[int, int]]
    escapes_by_month: dict[str, int]
    promotions_by_month: dict[str, int]
    regression_escapes: int
    production_promotions: int
    near_misses: int
    open_action_items: int
    overdue_action_items: int

    @property
    def escape_rate(self) -> float | None:
        """Regression escapes per production promotion (None without promotions)."""
        return round(self.regression_escapes / self.production_promotions, 4) if self.production_promotions \
            else None

    def as_dict(self) -> dict:
        """Plain figures (JSON-ready) for other apps and the API."""
        return {"since": self.since, "until": self.until, "incidents": self.total.count,
                **{k: v for k, v in self.total.as_dict().items() if k != "count"},
                "by_severity": {f"sev{k}": v.as_dict() for k, v in sorted(self.by_severity.items())},
                "by_type": dict(self.by_kind), "regression_escapes": self.regression_escapes,
                "production_promotions": self.production_promotions, "escape_rate": self.escape_rate,
                "near_misses": self.near_misses, "open_action_items": self.open_action_items,
                "overdue_action_items": self.overdue_action_items}


def _window(queryset: QuerySet, since, until) -> QuerySet:
    queryset = queryset.order_by()
    if since is not None:
        queryset = queryset.filter(detected_at__gte=since)
    if until is not None:
        queryset = queryset.filter(detected_at__lt=until)
    return queryset


def _month_of(field: str) -> Func:
    """The field's month as "YYYY-MM" in UTC (Django's PostgreSQL sessions run in UTC when USE_TZ is on)."""
    return Func(F(field), Value("YYYY-MM"), function="to_char", output_field=CharField())


def _minutes(field: str) -> ExpressionWrapper:
    """Minutes from detection to `field` (NULL while it is empty)."""
    return ExpressionWrapper(Extract(ExpressionWrapper(F(field) - F("detected_at"), output_field=DurationField()),
                                     "epoch") / 60.0, output_field=FloatField())


def _promotions(use_case_ids, since, until, team_ids=None) -> QuerySet:
    events = LabelEvent.objects.filter(label=PRODUCTION)
    if team_ids is not None:
        events = events.filter(prompt__team__in=team_ids)
    if use_case_ids is not None:
        events = events.filter(prompt_id__in=UseCasePrompt.objects.filter(use_case_id__in=use_case_ids)
                               .values("prompt_id"))
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    if until is not None:
        events = events.filter(occurred_at__lt=until)
    return events


def figures(incidents: QuerySet[Incident], *, since=None, until=None, use_case_ids=None,
            promotion_teams=None) -> IncidentMetrics:
    """The figures of `incidents` (already restricted to a reader or to use cases) detected in [since, until);
    promotions of the use cases' prompts (`use_case_ids`) or of the teams' prompts (`promotion_teams`, ids)."""
    incidents = _window(incidents, since, until)
    # Minutes and months in SQL: 5,000 rows of floats and short strings instead of 15,000 parsed datetimes.
    rows = list(incidents.annotate(ttm=_minutes("mitigated_at"), ttr=_minutes("resolved_at"),
                                   month=_month_of("detected_at"))
                .values_list("pk", "severity", "kind", "team__name", "month", "ttm", "ttr", "near_miss",
                             "review__regression_escape"))
    use_cases = defaultdict(list)
    for incident_id, title in Incident.use_cases.through.objects.filter(incident__in=incidents.values("pk")) \
            .values_list("incident_id", "usecase__title"):
        use_cases[incident_id].append(title)
    total, by_severity, by_team = Durations(), defaultdict(Durations), defaultdict(Durations)
    by_use_case, by_month = defaultdict(Durations), defaultdict(Durations)
    by_kind, severity_by_month = defaultdict(int), defaultdict(lambda: defaultdict(int))
    escapes_by_month = defaultdict(int)
    escapes = near = 0
    for pk, severity, kind, team, month, ttm, ttr, near_miss, escape in rows:
        for group in (total, by_severity[severity], by_team[team], by_month[month],
                      *(by_use_case[t] for t in use_cases.get(pk, []))):
            group.add(ttm, ttr)
        by_kind[kind] += 1
        severity_by_month[month][severity] += 1
        if escape:
            escapes += 1
            escapes_by_month[month] += 1
        near += bool(near_miss)
    promotions_by_month = defaultdict(int)
    for month in _promotions(use_case_ids, since, until, promotion_teams) \
            .annotate(month=_month_of("occurred_at")).values_list("month", flat=True):
        promotions_by_month[month] += 1
    actions = ActionItem.objects.filter(incident_id__in=incidents.values("pk"), status__in=ACTION_OPEN_STATUSES)
    return IncidentMetrics(
        since=since, until=until, total=total, by_severity=dict(by_severity), by_kind=dict(by_kind),
        by_team=dict(by_team), by_use_case=dict(by_use_case), by_month=dict(sorted(by_month.items())),
        severity_by_month={m: dict(v) for m, v in sorted(severity_by_month.items())},
        escapes_by_month=dict(escapes_by_month), promotions_by_month=dict(promotions_by_month),
        regression_escapes=escapes, production_promotions=sum(promotions_by_month.values()), near_misses=near,
        open_action_items=actions.count(),
        overdue_action_items=actions.filter(due_date__lt=timezone.localdate()).count())


def incident_metrics(use_case_ids=None, since: datetime | None = None, until: datetime | None = None) -> IncidentMetrics:
    """The selector for other apps (scorecards): figures of the incidents affecting `use_case_ids` (None: all)
    detected in [since, until). Not restricted to a reader: the caller is."""
    incidents = Incident.objects.all()
    if use_case_ids is not None:
        use_case_ids = list(use_case_ids)
        incidents = incidents.filter(use_cases__in=use_case_ids).distinct()
    return figures(incidents, since=since, until=until, use_case_ids=use_case_ids)


def metrics_for(*, actor, since=None, until=None, team: str = "", use_case_id: int | None = None) -> IncidentMetrics:
    """The metrics page: figures over the incidents `actor` may see, optionally of one team (slug) or use case."""
    incidents = selectors.incident_list(actor=actor, filters=selectors.IncidentFilters(team=team))
    use_case_ids = None
    if use_case_id:
        use_case_ids = [use_case_id]
        incidents = incidents.filter(use_cases=use_case_id)
    teams = None
    if team:
        teams = Team.objects.filter(slug=team).values("pk")
    elif not sees_everything(actor):
        teams = teams_for(actor, Action.VIEW).values("pk")
    return figures(incidents, since=since, until=until, use_case_ids=use_case_ids, promotion_teams=teams)
