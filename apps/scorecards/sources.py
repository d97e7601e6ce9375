"""Gather every use case's facts in one pass: a handful of grouped queries over rollups and small tables, never
the raw ledger (its one read is the safety events' partial index, a few rows per thousand calls).

| facts | from |
|---|---|
| traffic, tokens, cost, errors | gateway `TrafficDaily` (per key and day) of the keys bound to the use case |
| latency P50/P95 | gateway `LatencyDaily` bins (measure "total") |
| tokens per request (median, P95) | gateway `TokensDaily`: per use case and day, calls per token bin |
| end users | gateway `EndUserDaily` (hashed), distinct per window, and per 13 weeks for the growth |
| availability with an SLO | slos `slo_status` (its last evaluation) and gateway `SliHour` summed per day |
| safety events | `UsageEvent.guardrail_actions` through the partial index `usage_guardrail_idx` |
| outcomes, overrides | evals `Feedback` (use_case_id, success, overridden) per day |
| live groundedness | evals `Feedback.groundedness` per day; `UsageEvent.groundedness` of linked collections' RAG answers through the partial index `usage_grounded_collection_idx` |
| eval runs, gates | evals `EvalRun` of the production versions of linked prompts, `EvalGate` |
| promotions | prompts `LabelEvent` (label production) of linked prompts |
| freshness, recall | rag `Document.indexed_at`, succeeded `IndexingJob`s, `RetrievalEvalRun` |
| incidents | incidents `Incident` naming the use case, with its post-incident review's regression-escape flag |
| experiments | experiments `Experiment.started_at` (the first start) of the use case's experiments |
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import TruncDate

from apps.costs.models import UsageEvent
from apps.evals.models import GROUNDEDNESS_ONLY, EvalGate, EvalRun, Feedback, RunStatus
from apps.experiments.models import Experiment
from apps.gateway.models import EndUserDaily, GatewayKey, LatencyDaily, SliHour, TokensDaily, TrafficDaily
from apps.incidents.models import Incident
from apps.prompts.models import PRODUCTION, Label, LabelEvent
from apps.rag.models import Document, IndexingJob, JobStatus, RetrievalEvalRun
from apps.reviews.models import UseCase, UseCaseCollection, UseCasePrompt
from apps.scorecards.facts import (
    EXPERIMENT_SPAN,
    QUARTER_WEEKS,
    EvalRunFact,
    IncidentFact,
    RetrievalFact,
    SloFact,
    UseCaseFacts,
    Window,
)
from apps.scorecards.models import ScorecardProfile, TargetChange
from apps.slos.models import Slo
from apps.slos.selectors import slo_status


def collect(use_cases: list[tuple[int, int, str]], windows: list[Window]) -> dict[int, UseCaseFacts]:
    """Facts of each (use case id, team id, tier) over the span the windows cover (and the window before it)."""
    as_of = max(w.end for w in windows)
    facts = {uc: UseCaseFacts(use_case_id=uc, team_id=team, tier=tier, as_of=as_of) for uc, team, tier in use_cases}
    if not facts:
        return facts
    ids = list(facts)
    since = min(w.start for w in windows)
    since = since - (max(w.end for w in windows) - since)  # change-mode KPIs read the window before, too
    for uc, users in ScorecardProfile.objects.filter(use_case_id__in=ids).values_list("use_case_id", "target_users"):
        facts[uc].target_users = users
    _gateway(facts, ids, since, windows)
    _end_users(facts, ids, windows)
    _availability_slo(facts, ids, min(w.start for w in windows))
    _outcomes(facts, ids, since)
    _prompts(facts, ids, since)
    _collections(facts, ids)
    _live_groundedness(facts, ids, since)
    _incidents(facts, ids, since)
    _experiments(facts, ids, min(w.end for w in windows) - EXPERIMENT_SPAN)
    return facts


_TRAFFIC_SQL = f"""
SELECT k.use_case_id, t.day, SUM(t.requests), SUM(t.errors), SUM(t.refused), SUM(t.input_tokens),
       SUM(t.output_tokens), SUM(t.cost), SUM(t.unpriced)
FROM {TrafficDaily._meta.db_table} t JOIN {GatewayKey._meta.db_table} k ON k.id = t.gateway_key_id
WHERE k.use_case_id = ANY(%s) AND t.day >= %s GROUP BY 1, 2
"""
_LATENCY_SQL = f"""
SELECT k.use_case_id, t.day, t.bin, SUM(t.requests)
FROM {LatencyDaily._meta.db_table} t JOIN {GatewayKey._meta.db_table} k ON k.id = t.gateway_key_id
WHERE k.use_case_id = ANY(%s) AND t.day >= %s AND t.measure = 'total' GROUP BY 1, 2, 3
"""
_TOKENS_SQL = f"SELECT use_case_id, day, bins FROM {TokensDaily._meta.db_table} WHERE use_case_id = ANY(%s) AND day >= %s"
# Each (use case, end user) seen in the last 2 × 13 weeks + the trend's weeks, as a bit per week back from the
# current window's last day (bit k: seen k weeks back); each trend point's window (4 bits for 28 days), quarter
# and the quarter before (13 bits each) are then masks: one scan of EndUserDaily for all 8 points, counted in SQL.
_END_USERS_SQL = f"""
WITH seen AS (
    SELECT use_case_id, bit_or(1::bigint << ((%(last)s::date - day) / 7)) AS weeks
      FROM {EndUserDaily._meta.db_table}
     WHERE use_case_id = ANY(%(ids)s) AND day > %(last)s::date - %(days)s AND day <= %(last)s::date
     GROUP BY use_case_id, user_hash
)
SELECT use_case_id, p, count(*) FILTER (WHERE weeks & (%(window)s::bigint << p) <> 0),
       count(*) FILTER (WHERE weeks & (%(mask)s::bigint << p) <> 0),
       count(*) FILTER (WHERE weeks & (%(mask)s::bigint << (p + %(quarter)s)) <> 0)
  FROM seen, unnest(%(points)s::int[]) AS p GROUP BY 1, 2
"""
_SLI_DAYS_SQL = f"""
SELECT use_case_id, (hour AT TIME ZONE 'UTC')::date, SUM(requests), SUM(bad) FROM {SliHour._meta.db_table}
WHERE use_case_id = ANY(%s) AND hour >= %s GROUP BY 1, 2
"""


def _gateway(facts, ids, since: datetime, windows) -> None:
    """Sums per use case and day, grouped in SQL (keys carry the use case): a few hundred thousand small rows
    for 500 use cases, not the rollups' per-key rows."""
    key_uc = dict(GatewayKey.objects.filter(use_case_id__in=ids).values_list("pk", "use_case_id"))
    if not key_uc:
        return
    busy = dict(TrafficDaily.objects.filter(gateway_key_id__in=list(key_uc), day__gte=since.date())
                .values_list("gateway_key_id").annotate(Sum("requests")).order_by())
    for key, uc in sorted(key_uc.items(), key=lambda kv: -(busy.get(kv[0]) or 0)):
        facts[uc].key_ids.append(key)
    with connection.cursor() as cursor:
        cursor.execute(_TRAFFIC_SQL, [ids, since.date()])
        for uc, day, requests, errors, refused, tokens_in, tokens_out, cost, unpriced in cursor.fetchall():
            facts[uc].traffic[day] = [int(requests), int(errors), int(refused), int(tokens_in), int(tokens_out),
                                      float(cost or 0), int(unpriced)]  # SUM of bigint is numeric: back to int
        cursor.execute(_LATENCY_SQL, [ids, since.date()])
        for uc, day, b, n in cursor.fetchall():
            facts[uc].latency.setdefault(day, {})[b] = int(n)
        cursor.execute(_TOKENS_SQL, [ids, since.date()])
        for uc, day, bins in cursor.fetchall():
            facts[uc].tokens[day] = {b: n for b, n in enumerate(bins) if n}
    safety = (UsageEvent.objects.filter(guardrail_actions__isnull=False, gateway_key_id__in=list(key_uc),
                                        occurred_at__gte=since)
              .annotate(day=TruncDate("occurred_at")).values_list("gateway_key_id", "day")
              .annotate(n=Count("pk")).order_by())
    for key, day, n in safety:
        f = facts[key_uc[key]]
        f.safety[day] = f.safety.get(day, 0) + n


def _end_users(facts, ids, windows) -> None:
    """Distinct end users per window (adoption), and in the 13 weeks to each window's last day and the 13 before
    (growth): one scan when the windows are whole weeks a whole number of weeks apart (the trend's 28 days, a
    week apart), else a distinct count per window (a condition's span)."""
    last = max(w.last_day for w in windows)
    weekly = {w: (last - w.last_day).days // 7 for w in windows
              if (last - w.last_day).days % 7 == 0 and ((w.last_day - w.first_day).days + 1) % 7 == 0}
    lengths = {(w.last_day - w.first_day).days + 1 for w in weekly}
    if len(lengths) > 1:  # windows of several lengths: the scan serves the quarters only
        weekly = {}
    for window in windows:
        if window not in weekly:
            distinct = (EndUserDaily.objects.filter(use_case_id__in=ids, day__gte=window.first_day,
                                                    day__lte=window.last_day)
                        .values_list("use_case_id").annotate(n=Count("user_hash", distinct=True)).order_by())
            for uc, n in distinct:
                facts[uc].active_users[window.key] = n
    points = sorted({(last - w.last_day).days // 7 for w in windows if (last - w.last_day).days % 7 == 0})
    if not points:
        return
    window_weeks = (lengths.pop() // 7) if weekly else 0
    by_point = {}
    for w, p in weekly.items():
        by_point.setdefault(p, []).append(w.key)
    weeks = max(2 * QUARTER_WEEKS, window_weeks) + max(points)
    with connection.cursor() as cursor:
        cursor.execute(_END_USERS_SQL, {"last": last, "ids": ids, "days": 7 * weeks, "window": (1 << window_weeks) - 1,
                                        "mask": (1 << QUARTER_WEEKS) - 1, "quarter": QUARTER_WEEKS, "points": points})
        for uc, p, active, now, before in cursor.fetchall():
            facts[uc].quarter_users[last - timedelta(days=7 * p)] = (now, before)
            for key in by_point.get(p, ()):
                if active:
                    facts[uc].active_users[key] = active


def _availability_slo(facts, ids, since: datetime) -> None:
    """Use cases with an active availability SLO: its last evaluation, and its SLI counts per day (SliHour) for the
    windows that are not the SLO's own (the trend, a condition's span)."""
    with_slo = []
    for uc, statuses in slo_status(ids).items():
        for s in statuses:
            if s.kind == "availability":
                facts[uc].availability_slo = SloFact(s.slo_id, s.target_percent / 100, s.window_days, s.valid_events,
                                                     s.bad_events, s.evaluated_at, s.url)
                with_slo.append(uc)
    if not with_slo:
        return
    with connection.cursor() as cursor:
        cursor.execute(_SLI_DAYS_SQL, [with_slo, since])
        for uc, day, valid, bad in cursor.fetchall():
            facts[uc].sli[day] = [int(valid), int(bad)]


def _outcomes(facts, ids, since: datetime) -> None:
    rows = (Feedback.objects.filter(use_case_id__in=ids, created_at__gte=since).exclude(GROUNDEDNESS_ONLY)
            .annotate(day=TruncDate("created_at")).values_list("use_case_id", "day")
            .annotate(s=Count("pk", filter=Q(success=True)), f=Count("pk", filter=Q(success=False)),
                      o=Count("pk", filter=Q(overridden=True)), n=Count("pk")).order_by())
    for uc, day, *counts in rows:
        facts[uc].outcomes[day] = counts


def _live_groundedness(facts, ids, since: datetime) -> None:
    """Scored live answers per use case and day (ADR 0121): the products' scores sent on feedback, and the RAG
    answers of the collections linked to the use case (after `_collections`), read through the ledger's partial
    index on scored rows."""
    def add(uc: int, day, n: int, total) -> None:
        row = facts[uc].live_groundedness.setdefault(day, [0, 0.0])
        row[0] += n
        row[1] += float(total)

    sent = (Feedback.objects.filter(use_case_id__in=ids, created_at__gte=since, groundedness__isnull=False)
            .annotate(day=TruncDate("created_at")).values_list("use_case_id", "day")
            .annotate(n=Count("pk"), s=Sum("groundedness")).order_by())
    for uc, day, n, total in sent:
        add(uc, day, n, total)
    by_collection: dict = defaultdict(list)
    for uc in ids:
        for collection in facts[uc].collection_ids:
            by_collection[collection].append(uc)
    if not by_collection:
        return
    answered = (UsageEvent.objects.filter(groundedness__isnull=False, collection_id__in=list(by_collection),
                                          occurred_at__gte=since, use_case_id__isnull=True)
                .annotate(day=TruncDate("occurred_at")).values_list("collection_id", "day")
                .annotate(n=Count("pk"), s=Sum("groundedness")).order_by())
    for collection, day, n, total in answered:
        for uc in by_collection[collection]:
            add(uc, day, n, total)


def _prompts(facts, ids, since: datetime) -> None:
    links = list(UseCasePrompt.objects.filter(use_case_id__in=ids).values_list("use_case_id", "prompt_id"))
    if not links:
        return
    by_prompt: dict = defaultdict(list)
    for uc, prompt in links:
        facts[uc].prompt_ids.append(prompt)
        by_prompt[prompt].append(uc)
    prompts = list(by_prompt)
    production = dict(Label.objects.filter(name=PRODUCTION, prompt_id__in=prompts).values_list("version_id",
                                                                                               "prompt_id"))
    gated = set(EvalGate.objects.filter(prompt_id__in=prompts).values_list("prompt_id", flat=True))
    for prompt, ucs in by_prompt.items():
        for uc in ucs:
            if prompt in production.values():
                facts[uc].production_prompts.append(prompt)
            if prompt in gated:
                facts[uc].gated_prompts.add(prompt)
    runs = (EvalRun.objects.filter(prompt_version_id__in=list(production), status=RunStatus.FINISHED,
                                   finished_at__isnull=False)
            .order_by("finished_at").values_list("pk", "prompt_version_id", "finished_at", "summary"))
    for pk, version, finished_at, summary in runs:
        prompt = production[version]
        for uc in by_prompt[prompt]:
            facts[uc].evaluated_prompts.setdefault(prompt, []).append(finished_at)
            facts[uc].eval_runs.append(EvalRunFact(pk, finished_at, (summary or {}).get("evaluators", [])))
    moves = (LabelEvent.objects.filter(prompt_id__in=prompts, label=PRODUCTION, occurred_at__gte=since)
             .values_list("prompt_id", "occurred_at"))
    for prompt, at in moves:
        for uc in by_prompt[prompt]:
            facts[uc].promotions.append(at)


def _collections(facts, ids) -> None:
    links = list(UseCaseCollection.objects.filter(use_case_id__in=ids).values_list("use_case_id", "collection_id"))
    if not links:
        return
    by_collection: dict = defaultdict(list)
    for uc, collection in links:
        facts[uc].collection_ids.append(collection)
        by_collection[collection].append(uc)
    collections = list(by_collection)
    indexed: dict = defaultdict(list)
    newest = (Document.objects.filter(collection_id__in=collections, indexed_at__isnull=False)
              .values_list("collection_id").annotate(Max("indexed_at")).order_by())
    for collection, at in newest:
        indexed[collection].append(at)
    jobs = IndexingJob.objects.filter(collection_id__in=collections, status=JobStatus.SUCCEEDED,
                                      finished_at__isnull=False).values_list("collection_id", "finished_at")
    for collection, at in jobs:
        indexed[collection].append(at)
    runs = (RetrievalEvalRun.objects.filter(collection_id__in=collections, status=JobStatus.SUCCEEDED,
                                            finished_at__isnull=False)
            .order_by("finished_at").values_list("pk", "collection_id", "finished_at", "metrics", "latency"))
    for pk, collection, at, metrics, latency in runs:
        fact = RetrievalFact(pk, collection, at, _recall(metrics), _p50(latency))
        for uc in by_collection[collection]:
            facts[uc].retrieval_runs.append(fact)
    for collection, times in indexed.items():
        for uc in by_collection[collection]:
            facts[uc].indexed[collection] = sorted(times)


def _recall(metrics: dict) -> float | None:
    for leg in ("hybrid", "vector", "bm25"):
        value = (metrics or {}).get(leg, {}).get("recall@10")
        if value is not None:
            return float(value)
    return None


def _p50(latency: dict) -> float | None:
    for leg in ("hybrid", "vector", "bm25"):
        value = (latency or {}).get(leg)
        if isinstance(value, dict) and value.get("p50_ms") is not None:
            return float(value["p50_ms"])
    return None


def _incidents(facts, ids, since: datetime) -> None:
    through = Incident.use_cases.through
    rows = (through.objects.filter(usecase_id__in=ids)
            .filter(Q(incident__detected_at__gte=since) | Q(incident__mitigated_at__gte=since)
                    | Q(incident__resolved_at__gte=since))
            .values_list("usecase_id", "incident_id", "incident__severity", "incident__detected_at",
                         "incident__mitigated_at", "incident__resolved_at", "incident__prompt_versions",
                         "incident__review__pk", "incident__review__regression_escape"))
    for uc, pk, severity, detected, mitigated, resolved, versions, review, escape in rows:
        facts[uc].incidents.append(IncidentFact(pk, severity, detected, mitigated, resolved, versions or [],
                                                None if review is None else bool(escape)))


def _experiments(facts, ids, since: datetime) -> None:
    rows = (Experiment.objects.filter(use_case_id__in=ids, started_at__gte=since)
            .order_by("started_at").values_list("use_case_id", "started_at"))
    for uc, started in rows:
        facts[uc].experiment_starts.append(started)


# --- what changed: the incremental refresh ------------------------------------------------------------------------

def changed_since(ids, since: datetime) -> dict[int, datetime]:
    """{use case id: the latest time something a KPI reads changed, at or after `since`} (use cases with nothing
    new are absent): a gateway call landing (TokensDaily.updated_at, touched by every call of a use case), feedback,
    an eval run, gate or production promotion of a linked prompt, an indexing job, a document indexed, a
    retrieval run or a scored RAG answer of a linked collection, a link made, an incident or its review changing, an experiment started,
    an SLO defined or changed, a target changed, the use case itself edited. A dozen small queries; links removed
    and time passing (a day leaving the window, freshness ageing) are caught by the hourly recomputation."""
    ids = list(ids)
    latest: dict[int, datetime] = {}

    def note(rows) -> None:
        for uc, at in rows:
            if uc in wanted and at is not None and (uc not in latest or at > latest[uc]):
                latest[uc] = at

    wanted = set(ids)
    if not ids:
        return latest
    through = Incident.use_cases.through
    for model, use_case, at, extra in (  # (rows, their use case, their time, another filter)
            (TokensDaily, "use_case_id", "updated_at", {"day__gte": since.date()}),
            (Feedback, "use_case_id", "created_at", {}),
            (through, "usecase_id", "incident__updated_at", {}),
            (through, "usecase_id", "incident__review__updated_at", {}),
            (Experiment, "use_case_id", "started_at", {}),
            (UseCase, "pk", "updated_at", {}),
            (Slo, "use_case_id", "updated_at", {}),
            (TargetChange, "use_case_id", "occurred_at", {}),
            (UseCasePrompt, "use_case_id", "created_at", {}),
            (UseCaseCollection, "use_case_id", "created_at", {})):
        note(model.objects.filter(**{f"{use_case}__in": ids, f"{at}__gte": since}, **extra)
             .values_list(use_case).annotate(Max(at)).order_by())
    _through_links(note, UseCasePrompt, "prompt_id", ids, [
        EvalRun.objects.filter(finished_at__gte=since).values_list("prompt_version__prompt_id", "finished_at"),
        EvalGate.objects.filter(updated_at__gte=since).values_list("prompt_id", "updated_at"),
        LabelEvent.objects.filter(label=PRODUCTION, occurred_at__gte=since).values_list("prompt_id", "occurred_at")])
    _through_links(note, UseCaseCollection, "collection_id", ids, [
        IndexingJob.objects.filter(finished_at__gte=since).values_list("collection_id", "finished_at"),
        Document.objects.filter(indexed_at__gte=since).values_list("collection_id").annotate(Max("indexed_at"))
        .order_by(),
        RetrievalEvalRun.objects.filter(finished_at__gte=since).values_list("collection_id", "finished_at"),
        UsageEvent.objects.filter(groundedness__isnull=False, occurred_at__gte=since)  # scored RAG answers
        .values_list("collection_id").annotate(Max("occurred_at")).order_by()])
    return latest


def _through_links(note, link_model, field: str, ids, sources_of_change) -> None:
    """Changes of linked objects (prompts, collections) as changes of the use cases they are linked to."""
    changed: dict = {}
    for rows in sources_of_change:
        for obj, at in rows:
            if obj is not None and at is not None and (obj not in changed or at > changed[obj]):
                changed[obj] = at
    if changed:
        links = link_model.objects.filter(use_case_id__in=ids, **{f"{field}__in": list(changed)})
        note((uc, changed[obj]) for uc, obj in links.values_list("use_case_id", field))
