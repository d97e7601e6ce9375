"""Automatic detection (ADR 0087, 0088): rules on signals the portal already records, evaluated by the beat job
`apps.incidents.tasks.detection_rules_evaluate_task` every 30 seconds (so a signal opens its incident or suggestion
within a minute); each signal is a cheap query (an index range, or one Redis round trip) until it fires. Admins
write the rules (Django admin → Detection rules; the demo seeds one per signal).

Signals, each finding keyed by what it is about (its fingerprint):
- `gateway_errors`: the per-minute SLI counts (gateway.SliMinute) per use case — and per key for keys bound to no
  use case — over the window: bad / requests ≥ threshold with at least `min_requests` requests → a provider
  outage;
- `breaker_open`: a deployment's circuit breaker open or half-open (apps/llm/breakers.py), told to each team with
  ≥ threshold gateway calls to its alias in the window → a provider outage;
- `budget_cap`: gateway calls refused with 429 `insufficient_quota` (a hard-capped budget or a key's daily
  dollars) in the window, per team and feature ≥ threshold → runaway cost;
- `cost_anomaly`: costs' anomalies (costs.CostAnomaly, spend over the trailing 7-day norm) found in the window
  with spend / baseline ≥ threshold → runaway cost;
- `guardrail_spike`: gateway calls of one key whose guardrails *blocked* (UsageEvent.guardrail_actions) in the
  window ≥ threshold → unsafe content;
- `output_pii`: gateway calls of one key whose output scan found PII in the window ≥ threshold → data exposure;
- `eval_gate_failures`: finished eval runs of a prompt's release gate that fail it (evals' own `judge_run`) in
  the window ≥ threshold → incorrect outputs;
- `task_success_drop`: live feedback's task success per use case in the window against its 7-day baseline
  (apps/incidents/live_quality.py: folded counts, a two-proportion test), a drop ≥ threshold with at least
  `min_requests` feedbacks in each → incorrect outputs;
- `groundedness_drop`: live groundedness per use case (RAG answers' scores on the usage ledger, products' scores on
  their feedback; apps/incidents/live_quality.py: folded count, sum and sum of squares) in the window against its
  7-day baseline, Welch's t-test on the means, a drop ≥ threshold with at least `min_requests` scored answers in
  each → incorrect outputs (ADR 0121);
- `kpi_missed`: a use case whose latest scorecard has ≥ threshold KPIs missing their targets → other. Scorecards
  sits above incidents, so it answers through `signal_source_register` (apps/scorecards/hooks.py); without it
  the signal finds nothing.

A finding becomes a **suggestion** (the owning team's engineers and owners are told; one click opens the
prefilled incident), or, for a Sev1 rule with `auto_open`, an incident at once (declared by the system; its
team is paged like any Sev1). Duplicates fold: a finding whose fingerprint has a pending suggestion or an open
incident adds to it (a line on the incident's timeline at most once per window); a dismissed one stays quiet for
a day.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Membership, Role, Team
from apps.accounts.permissions import Action, is_authenticated, sees_everything, teams_for, user_of
from apps.audit.services import audit_record
from apps.costs.models import CallStatus, CostAnomaly, Source, UsageEvent
from apps.evals.gates import judge_run
from apps.evals.models import EvalRun, RunStatus
from apps.gateway.models import GatewayKey, SliMinute
from apps.gateway.sli import key_of_series, key_series
from apps.incidents import live_quality, rules
from apps.incidents.models import (
    LIVE_QUALITY_SIGNALS,
    DetectionRule,
    EventKind,
    IncidentSuggestion,
    IncidentType,
    Severity,
    Signal,
    Status,
    SuggestionStatus,
)
from apps.incidents.services import incident_declare, timeline_add
from apps.llm import breakers
from apps.llm.selectors import deployment_labels
from apps.notifications.services import notify
from apps.reviews.models import UseCase

DISMISSED_QUIET = timedelta(days=1)


@dataclass(frozen=True)
class Finding:
    team_id: int
    about: str  # what the finding is about, in the fingerprint: "deployment:gpt-4o-eu", "key:7", ...
    title: str
    detail: str
    values: dict = field(default_factory=dict)  # the incident's prefill (kind, features, deployments, ...)


def _teams(rule: DetectionRule) -> dict:
    return {"team_id": rule.team_id} if rule.team_id else {}


def _since(rule: DetectionRule, now: datetime) -> datetime:
    return now - timedelta(minutes=rule.window_minutes)


def _failed_deployments(rule: DetectionRule, now: datetime, **which) -> list[str]:
    """Only when the rule fires: which deployments failed (the prefill), from the ledger's recent rows."""
    return sorted(set(UsageEvent.objects.filter(occurred_at__gte=_since(rule, now), status=CallStatus.ERROR, **which)
                      .exclude(deployment="").values_list("deployment", flat=True)[:200]))


def _error_finding(rule: DetectionRule, team_id: int, about: str, label: str, requests: int, bad: int,
                   deployments: list[str], features: list[str]) -> Finding:
    return Finding(team_id, about,
                   f"Gateway errors on {label}: {bad / requests:.0%} of {requests} requests in {rule.window_minutes} min",
                   f"{bad} of {requests} gateway requests of {label} failed in the last {rule.window_minutes} minutes "
                   f"(deployments: {', '.join(deployments) or 'unknown'}); the rule fires at {rule.threshold:.0%} "
                   f"with at least {rule.min_requests} requests.",
                   {"kind": IncidentType.PROVIDER_OUTAGE, "deployments": deployments,
                    **({"features": features} if features else {})})


def gateway_errors(rule: DetectionRule, now: datetime) -> list[Finding]:
    """Minute resolution: the SLI counts per use case and minute (gateway.SliMinute) over the window; the calls of
    keys bound to no use case are in the same rows under each key's series (negative ids, `sli.key_series`)."""
    rows = SliMinute.objects.filter(minute__gte=_since(rule, now).replace(second=0, microsecond=0),
                                    minute__lte=now).values("use_case_id") \
        .annotate(requests=Sum("requests"), bad=Sum("bad"))
    hits = {r["use_case_id"]: r for r in rows
            if r["requests"] >= max(1, rule.min_requests) and r["bad"] / r["requests"] >= rule.threshold}
    if not hits:
        return []
    out = []
    for use_case in UseCase.objects.filter(pk__in=[i for i in hits if i > 0], **_teams(rule)) \
            .only("pk", "title", "team_id"):
        hit = hits[use_case.pk]
        out.append(_error_finding(rule, use_case.team_id, f"use_case:{use_case.pk}", use_case.title,
                                  hit["requests"], hit["bad"],
                                  _failed_deployments(rule, now, team_id=use_case.team_id, use_case_id=use_case.pk),
                                  []))
    key_ids = [key_of_series(i) for i in hits if key_of_series(i) is not None]
    for key in GatewayKey.objects.filter(pk__in=key_ids, **_teams(rule)).only("pk", "name", "key_id", "team_id",
                                                                              "feature"):
        hit = hits[key_series(key.pk)]
        out.append(_error_finding(rule, key.team_id, f"key:{key.pk}", f"key {key.name} ({key.prefix})",
                                  hit["requests"], hit["bad"],
                                  _failed_deployments(rule, now, team_id=key.team_id, gateway_key_id=key.pk),
                                  _key_features(key)))
    return out


def breaker_open(rule: DetectionRule, now: datetime) -> list[Finding]:
    """Deployments whose breaker is open or half-open (one Redis round trip); each team with at least `threshold`
    calls to the deployment's alias in the window is told: gateway calls by their alias, the portal's own calls by
    the model of any of the alias's deployments (they may have fallen back). The ledger is read only then."""
    labels = deployment_labels()
    broken = {labels[pk]: state for pk, state in breakers.states(list(labels)).items()
              if state.state in (breakers.OPEN, breakers.HALF_OPEN)}
    if not broken:
        return []
    aliases = {label.split("/", 1)[0] for label in broken}
    models = [label.split("/", 1)[1] for label in labels.values() if label.split("/", 1)[0] in aliases]
    rows = UsageEvent.objects.filter(Q(alias__in=aliases) | Q(alias="", model__in=models),
                                     occurred_at__gte=_since(rule, now), team__isnull=False, **_teams(rule)) \
        .values("team_id").annotate(calls=Count("id"))
    out = []
    for row in rows:
        if row["calls"] < max(1, rule.threshold):
            continue
        for label, state in broken.items():
            shown = state.state.replace("_", "-")
            out.append(Finding(row["team_id"], f"deployment:{label}", f"Circuit breaker {shown} on {label}",
                               f"The circuit breaker of {label} is {shown}: its recent calls failed. The team made "
                               f"{row['calls']} calls to {label.split('/', 1)[0]} in the last {rule.window_minutes} "
                               f"minutes (the rule fires at {rule.threshold:g}).",
                               {"kind": IncidentType.PROVIDER_OUTAGE, "deployments": [label]}))
    return out


def budget_cap(rule: DetectionRule, now: datetime) -> list[Finding]:
    """Calls the gateway refused with 429 `insufficient_quota` (a budget's hard cap, or a key's dollars per day)
    in the window, per team and feature."""
    rows = UsageEvent.objects.filter(source=Source.GATEWAY, occurred_at__gte=_since(rule, now),
                                     status=CallStatus.REFUSED, error_type="insufficient_quota", team__isnull=False,
                                     **_teams(rule)) \
        .values("team_id", "feature").annotate(refusals=Count("id"))
    out = []
    for row in rows:
        if row["refusals"] < max(1, rule.threshold):
            continue
        feature = row["feature"] or "the whole team"
        out.append(Finding(row["team_id"], f"budget:{row['feature']}",
                           f"Budget cap hit: {row['refusals']} calls of {feature} refused in {rule.window_minutes} min",
                           f"The gateway refused {row['refusals']} calls of {feature} with 429 insufficient_quota "
                           f"(a hard-capped budget or a key's daily dollars) in the last {rule.window_minutes} "
                           f"minutes (the rule fires at {rule.threshold:g}).",
                           {"kind": IncidentType.RUNAWAY_COST, "features": [row["feature"]] if row["feature"] else []}))
    return out


def cost_anomaly(rule: DetectionRule, now: datetime) -> list[Finding]:
    anomalies = CostAnomaly.objects.filter(created_at__gte=now - timedelta(minutes=rule.window_minutes),
                                           team__isnull=False, **_teams(rule))
    out = []
    for anomaly in anomalies:
        ratio = anomaly.ratio
        if ratio is None or ratio < rule.threshold:
            continue
        feature = anomaly.feature or "the whole team"
        out.append(Finding(anomaly.team_id, f"feature:{anomaly.feature}",
                           f"Spend anomaly: {feature} at {ratio:.1f}× its norm on {anomaly.day:%Y-%m-%d}",
                           f"Spend ${anomaly.spend:.2f} against a 7-day norm of ${anomaly.baseline:.2f} "
                           f"(the rule fires at {rule.threshold:g}×).",
                           {"kind": IncidentType.RUNAWAY_COST,
                            "features": [anomaly.feature] if anomaly.feature else []}))
    return out


def _guardrail_events_per_key(rule: DetectionRule, now: datetime, event: dict) -> list[tuple[dict, object, str]]:
    """(row {team_id, gateway_key_id, calls}, key or None, its label) of the keys whose gateway calls in the window
    carry a guardrail event matching `event` at least `threshold` times (the partial guardrail index serves it)."""
    rows = UsageEvent.objects.filter(source=Source.GATEWAY, occurred_at__gte=_since(rule, now),
                                     guardrail_actions__contains=[event], team__isnull=False, **_teams(rule)) \
        .values("team_id", "gateway_key_id").annotate(calls=Count("id"))
    rows = [r for r in rows if r["calls"] >= max(1, rule.threshold)]
    keys = GatewayKey.objects.in_bulk([r["gateway_key_id"] for r in rows if r["gateway_key_id"]])
    out = []
    for row in rows:
        key = keys.get(row["gateway_key_id"])
        out.append((row, key, f"key {key.name} ({key.prefix})" if key else "gateway calls without a key"))
    return out


def _key_features(key) -> list[str]:
    return [key.feature] if key is not None and key.feature else []


def guardrail_spike(rule: DetectionRule, now: datetime) -> list[Finding]:
    return [Finding(row["team_id"], f"key:{row['gateway_key_id']}",
                    f"Guardrail blocks spike: {row['calls']} on {label} in {rule.window_minutes} min",
                    f"The gateway's guardrails blocked {row['calls']} calls of {label} in the last "
                    f"{rule.window_minutes} minutes (the rule fires at {rule.threshold:g}).",
                    {"kind": IncidentType.UNSAFE_CONTENT, "features": _key_features(key)})
            for row, key, label in _guardrail_events_per_key(rule, now, {"action": "block"})]


def output_pii(rule: DetectionRule, now: datetime) -> list[Finding]:
    """Gateway calls whose output scan found PII (any action: flagged, redacted or blocked), per key."""
    return [Finding(row["team_id"], f"key:{row['gateway_key_id']}",
                    f"PII in outputs: {row['calls']} answers on {label} in {rule.window_minutes} min",
                    f"The gateway's output scan found personal data in {row['calls']} answers of {label} in the "
                    f"last {rule.window_minutes} minutes (the rule fires at {rule.threshold:g}).",
                    {"kind": IncidentType.DATA_EXPOSURE, "features": _key_features(key)})
            for row, key, label in _guardrail_events_per_key(rule, now, {"direction": "output", "check": "pii"})]


def eval_gate_failures(rule: DetectionRule, now: datetime) -> list[Finding]:
    runs = EvalRun.objects.filter(status=RunStatus.FINISHED, gate__isnull=False, prompt__isnull=False,
                                  finished_at__gte=now - timedelta(minutes=rule.window_minutes), **_teams(rule)) \
        .select_related("gate", "prompt", "prompt_version")
    failed = defaultdict(list)
    for run in runs:
        problems, _ = judge_run(run.gate, run, None)
        if problems:
            failed[(run.team_id, run.prompt)].append((run, problems))
    out = []
    for (team_id, prompt), items in failed.items():
        if len(items) < rule.threshold:
            continue
        versions = sorted({f"{prompt.name}@v{run.prompt_version.number}" for run, _ in items if run.prompt_version})
        out.append(Finding(team_id, f"prompt:{prompt.pk}",
                           f"Eval gate failures: {len(items)} run(s) of {prompt.name} fail its gate",
                           "; ".join(f"run {run.pk}: {', '.join(problems)}" for run, problems in items)[:2000],
                           {"kind": IncidentType.INCORRECT_OUTPUTS, "prompt_versions": versions}))
    return out


def _rule_use_cases(rule: DetectionRule) -> list[int] | None:
    return list(UseCase.objects.filter(team_id=rule.team_id).values_list("pk", flat=True)) if rule.team_id else None


def _use_case_findings(drops: list, describe) -> list[Finding]:
    """A live-quality rule's findings: per dropping use case, `describe(drop, use_case) -> (title, detail)`,
    incorrect outputs, the use case in the prefill."""
    if not drops:
        return []
    use_cases = UseCase.objects.in_bulk([d.use_case_id for d in drops])
    return [Finding(use_case.team_id, f"use_case:{use_case.pk}", *describe(drop, use_case),
                    {"kind": IncidentType.INCORRECT_OUTPUTS, "use_cases": [use_case.pk]})
            for drop in drops if (use_case := use_cases.get(drop.use_case_id)) is not None]


def task_success_drop(rule: DetectionRule, now: datetime) -> list[Finding]:
    """Live feedback (POST /api/v1/feedback) per use case: the window's task success against the 7 days before,
    from the folded counts (the beat folds the new feedback rows first, once per evaluation)."""
    drops = live_quality.task_success_drops(now=now, window_minutes=rule.window_minutes,
                                            min_total=rule.min_requests, min_drop=rule.threshold,
                                            use_case_ids=_rule_use_cases(rule))

    def describe(drop, use_case) -> tuple[str, str]:
        return (f"Task success dropped on {use_case.title}: {drop.recent_rate:.0%} of "
                f"{drop.recent_total} in {rule.window_minutes} min, {drop.base_rate:.0%} before",
                f"Live feedback on {use_case.title}: {drop.recent_good} of {drop.recent_total} answers "
                f"succeeded in the last {rule.window_minutes} minutes ({drop.recent_rate:.1%}) against "
                f"{drop.base_good} of {drop.base_total} in the 7 days before ({drop.base_rate:.1%}); "
                f"one-sided two-proportion test p = {drop.p_value:.2g}. The rule fires on a drop of at "
                f"least {rule.threshold:.0%} with at least {rule.min_requests} feedbacks in each window "
                f"(p < {live_quality.ALPHA:g}).")

    return _use_case_findings(drops, describe)


def groundedness_drop(rule: DetectionRule, now: datetime) -> list[Finding]:
    """Live groundedness per use case (ADR 0121): the window's mean score against the 7 days before, from the
    folded counts (the beat folds the new scored usage events and feedback first, once per evaluation)."""
    drops = live_quality.groundedness_drops(now=now, window_minutes=rule.window_minutes,
                                            min_total=rule.min_requests, min_drop=rule.threshold,
                                            use_case_ids=_rule_use_cases(rule))

    def describe(drop, use_case) -> tuple[str, str]:
        recent, base = drop.recent, drop.base
        return (f"Groundedness dropped on {use_case.title}: {recent.mean:.0%} mean over {recent.n} "
                f"answers in {rule.window_minutes} min, {base.mean:.0%} before",
                f"Live answers of {use_case.title}: mean groundedness {recent.mean:.1%} over {recent.n} "
                f"scored answers in the last {rule.window_minutes} minutes against {base.mean:.1%} over "
                f"{base.n} in the 7 days before; one-sided Welch t-test t = {drop.t:.2f}, "
                f"p = {drop.p_value:.2g}. The rule fires on a drop of at least {rule.threshold:.0%} with "
                f"at least {rule.min_requests} scored answers in each window (p < {live_quality.ALPHA:g}).")

    return _use_case_findings(drops, describe)


# signals whose data belongs to a higher app, which registers the reader at start-up (docs/architecture.md)
_SIGNAL_SOURCES: dict = {}


def signal_source_register(signal: str, reader) -> None:
    """`reader(rule, now, finding=Finding) -> list[Finding]` answers `signal` (kpi_missed: scorecards)."""
    _SIGNAL_SOURCES[signal] = reader


def kpi_missed(rule: DetectionRule, now: datetime) -> list[Finding]:
    reader = _SIGNAL_SOURCES.get(Signal.KPI_MISSED)
    return [] if reader is None else reader(rule, now, finding=Finding)


SIGNALS = {Signal.GATEWAY_ERRORS: gateway_errors, Signal.BREAKER_OPEN: breaker_open, Signal.BUDGET_CAP: budget_cap,
           Signal.COST_ANOMALY: cost_anomaly, Signal.GUARDRAIL_SPIKE: guardrail_spike, Signal.OUTPUT_PII: output_pii,
           Signal.EVAL_GATE_FAILURES: eval_gate_failures, Signal.TASK_SUCCESS_DROP: task_success_drop,
           Signal.GROUNDEDNESS_DROP: groundedness_drop, Signal.KPI_MISSED: kpi_missed}


# -- turning findings into suggestions or incidents ----------------------------------------------------------
@dataclass
class Evaluation:
    suggested: int = 0
    opened: int = 0
    folded: int = 0
    quiet: int = 0


def fingerprint(rule: DetectionRule, finding: Finding) -> str:
    return f"rule:{rule.pk}:team:{finding.team_id}:{finding.about}"[:300]


def _prefill(rule: DetectionRule, finding: Finding) -> dict:
    return {"title": finding.title[:200], "severity": rule.severity, "summary": finding.detail, **finding.values}


def _tell_team(suggestion: IncidentSuggestion) -> None:
    people = [m.user for m in Membership.objects.filter(team_id=suggestion.team_id, role__in=(Role.OWNER, Role.ENGINEER))
              .select_related("user")]
    notify(users=people, kind="incident.suggestion", title=f"Suggested incident: {suggestion.title}"[:200],
           body=f"{suggestion.detail}\nOpen it as an incident in one click, or dismiss it.",
           link=reverse("incidents:suggestions"), dedupe_key=f"incident-suggestion:{suggestion.pk}",
           email=suggestion.rule.severity in (Severity.SEV1, Severity.SEV2))


def _fold(suggestion: IncidentSuggestion, finding: Finding, rule: DetectionRule, now: datetime) -> None:
    quiet_until = (suggestion.values or {}).get("timeline_at")
    if suggestion.incident is not None and (quiet_until is None or
                                            now - datetime.fromisoformat(quiet_until) >= timedelta(
                                                minutes=rule.window_minutes)):
        timeline_add(suggestion.incident, kind=EventKind.SYSTEM, actor=None,
                     text=f"Detection rule “{rule.name}” fired again: {finding.title}.",
                     data={"rule": rule.pk, "suggestion": suggestion.pk})
        suggestion.values = {**(suggestion.values or {}), "timeline_at": now.isoformat()}
    suggestion.seen += 1
    suggestion.last_seen_at = now
    suggestion.save(update_fields=["seen", "last_seen_at", "values"])


@transaction.atomic
def _handle(rule: DetectionRule, finding: Finding, now: datetime, result: Evaluation) -> None:
    key = fingerprint(rule, finding)
    existing = IncidentSuggestion.objects.select_for_update(of=("self",)).select_related("incident") \
        .filter(fingerprint=key).order_by("-last_seen_at").first()
    if existing is not None:
        live_incident = existing.incident is not None and existing.incident.status not in (Status.RESOLVED,
                                                                                           Status.REVIEW_DONE)
        if existing.status == SuggestionStatus.PENDING or live_incident:
            _fold(existing, finding, rule, now)
            result.folded += 1
            return
        if existing.status == SuggestionStatus.DISMISSED and now - (existing.decided_at or now) < DISMISSED_QUIET:
            result.quiet += 1
            return
    suggestion = IncidentSuggestion.objects.create(rule=rule, team_id=finding.team_id, fingerprint=key,
                                                   title=finding.title[:200], detail=finding.detail,
                                                   values=_prefill(rule, finding), first_seen_at=now,
                                                   last_seen_at=now)
    if rule.auto_open and rule.severity == Severity.SEV1:
        _open(suggestion, actor=None)
        result.opened += 1
    else:
        _tell_team(suggestion)
        result.suggested += 1


def rules_evaluate(now: datetime | None = None) -> Evaluation:
    """Evaluate every enabled rule once (the beat job)."""
    now = now or timezone.now()
    result = Evaluation()
    enabled = list(DetectionRule.objects.filter(enabled=True).order_by("pk"))
    signals = {rule.signal for rule in enabled}
    if signals & set(LIVE_QUALITY_SIGNALS):
        live_quality.feedback_fold(now)  # the new feedback rows into the counts the rules read
    if Signal.GROUNDEDNESS_DROP in signals:
        live_quality.ledger_fold(now)  # the new scored usage events (RAG answers' groundedness)
    for rule in enabled:
        for finding in SIGNALS[rule.signal](rule, now):
            _handle(rule, finding, now, result)
        DetectionRule.objects.filter(pk=rule.pk).update(last_evaluated_at=now)
    return result


# -- a person acts on a suggestion ---------------------------------------------------------------------------
_PREFILL_FIELDS = ("summary", "features", "deployments", "prompt_versions", "use_cases")


def _open(suggestion: IncidentSuggestion, *, actor):
    values = suggestion.values or {}
    team = Team.objects.get(pk=suggestion.team_id)
    incident = incident_declare(actor=actor, team=team, as_system=actor is None, title=values["title"],
                                kind=values["kind"], severity=values["severity"],
                                **{k: values[k] for k in _PREFILL_FIELDS if values.get(k)})
    timeline_add(incident, kind=EventKind.SYSTEM, actor=None,
                 text=f"Opened from detection rule “{suggestion.rule.name}”: {suggestion.detail}"[:5000],
                 data={"rule": suggestion.rule_id, "suggestion": suggestion.pk})
    suggestion.status, suggestion.incident = SuggestionStatus.OPENED, incident
    suggestion.decided_at, suggestion.decided_by = timezone.now(), user_of(actor)
    suggestion.save(update_fields=["status", "incident", "decided_at", "decided_by"])
    return incident


def _pending(suggestion: IncidentSuggestion) -> IncidentSuggestion:
    suggestion = IncidentSuggestion.objects.select_for_update().select_related("rule").get(pk=suggestion.pk)
    if suggestion.status != SuggestionStatus.PENDING:
        raise ValidationError({"__all__": f"This suggestion is {suggestion.get_status_display().lower()} already."})
    return suggestion


@transaction.atomic
def suggestion_open(*, suggestion: IncidentSuggestion, actor):
    """One click: the prefilled incident, declared by `actor` (who must be allowed to declare for the team)."""
    if not rules.may_declare(actor, suggestion.team):
        raise PermissionDenied(f"You may not declare incidents for {suggestion.team.name}.")
    suggestion = _pending(suggestion)
    incident = _open(suggestion, actor=actor)
    audit_record(action="incident.suggestion_open", obj=suggestion, team=suggestion.team_id, actor=actor,
                 changes={"incident": incident.pk, "rule": suggestion.rule_id})
    return incident


@transaction.atomic
def suggestion_dismiss(*, suggestion: IncidentSuggestion, actor) -> IncidentSuggestion:
    if not rules.may_declare(actor, suggestion.team):
        raise PermissionDenied(f"Only people who may declare incidents for {suggestion.team.name} dismiss this.")
    suggestion = _pending(suggestion)
    suggestion.status = SuggestionStatus.DISMISSED
    suggestion.decided_at, suggestion.decided_by = timezone.now(), user_of(actor)
    suggestion.save(update_fields=["status", "decided_at", "decided_by"])
    audit_record(action="incident.suggestion_dismiss", obj=suggestion, team=suggestion.team_id, actor=actor,
                 changes={"rule": suggestion.rule_id, "fingerprint": suggestion.fingerprint})
    return suggestion


# -- reads -----------------------------------------------------------------------------------------------------
def suggestion_list(*, actor, status: str = SuggestionStatus.PENDING):
    """The suggestions of the teams the actor may see (council members and admins: every team)."""
    qs = IncidentSuggestion.objects.select_related("rule", "team", "incident").order_by("-last_seen_at", "-id")
    if status:
        qs = qs.filter(status=status)
    if not is_authenticated(actor):
        return qs.none()
    return qs if sees_everything(actor) else qs.filter(team__in=teams_for(actor, Action.VIEW))


def suggestion_get(*, actor, pk: int) -> IncidentSuggestion:
    suggestion = suggestion_list(actor=actor, status="").filter(pk=pk).first()
    if suggestion is None:
        raise Http404("No suggestion matches the given query.")
    return suggestion
