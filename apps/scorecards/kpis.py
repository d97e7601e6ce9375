"""The KPI table: one small function per KPI over a use case's facts and a window. Adding a KPI is one entry.

Each function returns a `Measure`; `value=None` means no data, and its `detail` says what would feed it (never a
zero that was not measured). Targets default by risk tier (`targets`); the owner may set others (services).
`mode="change"` KPIs ("stable or falling") compare the value with the previous window: the target is the largest
allowed relative rise. Status rules: `status_of` (docs/scorecards.md, ADR 0100).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from apps.costs.rollups import percentile_from_bins
from apps.evals.stats import wilson_interval
from apps.incidents.metrics import Durations
from apps.scorecards.facts import EXPERIMENT_SPAN, UseCaseFacts, Window
from apps.scorecards.models import Status

AT_RISK_MARGIN = 0.10  # within 10 % of the target (relative), or a rate's 95 % CI crossing it: at risk
AT_RISK_CHANGE = 0.05  # change-mode KPIs: within 5 points of the allowed rise


@dataclass(frozen=True)
class Measure:
    value: float | None
    sample: int | None = None
    ci: tuple[float, float] | None = None
    numerator: float | None = None
    denominator: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    unit: str  # ratio | growth (a relative change) | ms | usd | tokens | hours | minutes | count
    better: str  # higher | lower
    compute: Callable[[UseCaseFacts, Window], Measure]
    targets: dict  # tier -> default target ("" = no tier yet); None: no default
    feed: str  # what would feed it, shown when there is no data
    source: str  # which data page is behind it (see sources.source_url)
    mode: str = "absolute"  # or "change": target = largest allowed relative rise vs the previous window


_GATEWAY = "No gateway traffic: bind a gateway key to the use case."


def _tiers(low, elevated, high) -> dict:
    return {"low": low, "elevated": elevated, "high": high, "prohibited": high, "": elevated}


def _rate(passed: int, total: int, detail: str) -> Measure:
    interval = wilson_interval(passed, total)
    return Measure(interval.value, total, (interval.low, interval.high), passed, total, detail)


def _none(detail: str) -> Measure:
    return Measure(None, 0, detail=detail)


# --- the KPI functions --------------------------------------------------------------------------------------

def adoption(f: UseCaseFacts, w: Window) -> Measure:
    users = f.active_users.get(w.key)
    if not f.target_users:
        return _none("No target users set: the owner sets how many end users the feature is for.")
    if not users:
        return _none("No end users seen: send the OpenAI `user` field (or metadata.end_user) through the gateway.")
    return Measure(users / f.target_users, users, None, users, f.target_users,
                   f"{users:,} active end users of {f.target_users:,} targeted.")


def task_success(f: UseCaseFacts, w: Window) -> Measure:
    success, failure, _overridden, _n = f.outcome_sum(w)
    if not success + failure:
        return _none("No outcomes reported: send POST /api/v1/feedback (thumbs or score) with the use_case_id.")
    return _rate(success, success + failure, f"{success:,} of {success + failure:,} reported outcomes succeeded.")


def override_rate(f: UseCaseFacts, w: Window) -> Measure:
    _s, _f, overridden, total = f.outcome_sum(w)
    if not total:
        return _none("No feedback reported: send POST /api/v1/feedback with the use_case_id "
                     "(a correction counts as an override).")
    return _rate(overridden, total, f"{overridden:,} of {total:,} answers were overridden or escalated.")


def _latest_run(f: UseCaseFacts, w: Window):
    runs = [r for r in f.eval_runs if r.finished_at < w.end]
    return runs[-1] if runs else None


def _evaluator_counts(run, match) -> tuple[int, int]:
    entries = [e for e in run.evaluators if match(e)]
    return sum(e.get("passed") or 0 for e in entries), sum(e.get("scored") or 0 for e in entries)


def groundedness(f: UseCaseFacts, w: Window) -> Measure:
    run = _latest_run(f, w)
    if run is None:
        return _none("No finished eval run of a production prompt version: link the prompt and run its eval gate.")
    passed, scored = _evaluator_counts(run, lambda e: e.get("kind") == "groundedness")
    if not scored:
        return _none("The latest eval run of the production version has no groundedness evaluator.")
    return _rate(passed, scored, f"{passed:,} of {scored:,} answers grounded in eval run #{run.run_id}.")


def live_groundedness(f: UseCaseFacts, w: Window) -> Measure:
    n, total = f.live_groundedness_sum(w)
    if not n:
        return _none("No scored live answers: link a RAG collection (its answers are scored) or send groundedness "
                     "on POST /api/v1/feedback with the use_case_id.")
    return Measure(total / n, n, None, total, n, f"Mean groundedness {total / n:.1%} over {n:,} live answers (RAG "
                                                 f"answers of linked collections, products' scores on feedback).")


def hallucination(f: UseCaseFacts, w: Window) -> Measure:
    run = _latest_run(f, w)
    if run is None:
        return _none("No finished eval run of a production prompt version: link the prompt and run its eval gate.")
    passed, scored = _evaluator_counts(run, lambda e: "halluc" in str(e.get("name", "")).lower())
    how = "a hallucination evaluator"
    if not scored:  # no dedicated evaluator: unsupported answers per the groundedness evaluator
        passed, scored = _evaluator_counts(run, lambda e: e.get("kind") == "groundedness")
        how = "the groundedness evaluator (no evaluator named “hallucination…”)"
    if not scored:
        return _none("No evaluator named “hallucination…” nor a groundedness evaluator in the latest eval run of "
                     "the production version (define one on the golden set).")
    return _rate(scored - passed, scored, f"{scored - passed:,} of {scored:,} golden-set answers unsupported, per "
                                          f"{how} (eval run #{run.run_id}).")


def safety_violations(f: UseCaseFacts, w: Window) -> Measure:
    requests = f.traffic_sum(w)[0]
    if not requests:
        return _none("No gateway traffic: bind a gateway key to the use case.")
    events = f.safety_sum(w)
    return _rate(events, requests, f"{events:,} of {requests:,} gateway calls had a guardrail action.")


def _latency(q: float):
    def compute(f: UseCaseFacts, w: Window) -> Measure:
        bins = f.latency_bins(w)
        n = sum(bins.values())
        if not n:
            return _none("No gateway traffic: bind a gateway key to the use case.")
        return Measure(percentile_from_bins(bins, q), n, detail=f"P{int(q * 100)} of {n:,} gateway calls.")

    return compute


def availability(f: UseCaseFacts, w: Window) -> Measure:
    """With an availability SLO: its SLI (ADR 0105's valid and bad calls), as the SLO last evaluated it when the
    window is the SLO's own, else the same counts summed over the window; without one: the gateway's daily
    rollups. The detail says which."""
    slo = f.availability_slo
    if slo is not None:
        if f.as_of is not None and w.end == f.as_of and w.end - w.start == timedelta(days=slo.window_days):
            valid, bad, how = slo.valid, slo.bad, (f"the SLO's SLI over its {slo.window_days}-day window, as "
                                                   f"evaluated {_when(slo.evaluated_at)}")
        else:
            valid, bad = f.sli_sum(w)
            how = f"the SLO's SLI (its good and bad calls) over {(w.end - w.start).days} days"
            if slo.window_days != (w.end - w.start).days:
                how += f"; the SLO itself reads {slo.window_days} days"
        if valid <= 0:
            return _none(f"No valid call in the window for the availability SLO ({how}).")
        return _rate(valid - bad, valid, f"{valid - bad:,} of {valid:,} valid calls good: {how}.")
    requests, errors, refused, *_ = f.traffic_sum(w)
    answered = requests - refused
    if answered <= 0:
        return _none("No gateway calls reached a model: bind a gateway key to the use case.")
    return _rate(answered - errors, answered, f"{answered - errors:,} of {answered:,} calls answered without an "
                                              f"error ({refused:,} refused by policy, not counted), from the "
                                              f"gateway's daily rollups: no availability SLO (define one to read "
                                              f"its SLI here).")


def _when(at) -> str:
    return f"at {at:%Y-%m-%d %H:%M} UTC" if at else "not yet"


def cost_per_success(f: UseCaseFacts, w: Window) -> Measure:
    cost = f.traffic_sum(w)[5]
    success = f.outcome_sum(w)[0]
    if not success:
        return _none("No successful outcomes reported: send POST /api/v1/feedback (thumbs or score) with the "
                     "use_case_id.")
    if not f.traffic_sum(w)[0]:
        return _none("No gateway traffic: bind a gateway key to the use case.")
    return Measure(cost / success, success, None, cost, success,
                   f"${cost:,.2f} of gateway spend over {success:,} successful outcomes.")


def _tokens(q: float):
    """A percentile of the calls' input + output tokens, from the per-day log-scale histogram (TokensDaily)."""
    def compute(f: UseCaseFacts, w: Window) -> Measure:
        bins = f.token_bins(w)
        n = sum(bins.values())
        if not n:
            requests, _e, refused, tokens_in, tokens_out, *_ = f.traffic_sum(w)
            called = requests - refused
            if called > 0:  # days recorded before the histogram existed: say what there is, not a made-up median
                return _none(f"No token histogram for these days yet (it starts with the calls recorded since "
                             f"it was added); their mean was {(tokens_in + tokens_out) / called:,.0f} tokens over "
                             f"{called:,} calls.")
            return _none(_GATEWAY)
        return Measure(percentile_from_bins(bins, q), n, detail=f"P{int(q * 100)} of the input + output tokens of "
                                                                f"{n:,} gateway calls (log-scale bins, ±9 %).")

    return compute


def adoption_growth(f: UseCaseFacts, w: Window) -> Measure:
    """Active end users in the 13 weeks to the window's end against the 13 weeks before (the seed's "+15-30 % per
    quarter"), from the gateway's EndUserDaily."""
    now, before = f.quarter_users.get(w.last_day, (0, 0))
    if not now and not before:
        return _none("No end users seen: send the OpenAI `user` field (or metadata.end_user) through the gateway.")
    if not before:
        return _none(f"{now:,} active end users in the last 13 weeks and none in the 13 before: growth is "
                     f"measured once there is a previous quarter to compare with.")
    return Measure(now / before - 1, now, None, now - before, before,
                   f"{now:,} active end users in the 13 weeks to the window's end against {before:,} in the 13 "
                   f"weeks before.")


def index_freshness(f: UseCaseFacts, w: Window) -> Measure:
    if not f.collection_ids:
        return _none("No RAG collection linked to the use case.")
    ages = []
    for collection_id in f.collection_ids:
        done = [t for t in f.indexed.get(collection_id, []) if t < w.end]
        if not done:
            return _none(f"Collection #{collection_id} has nothing indexed yet.")
        ages.append((w.end - done[-1]).total_seconds() / 3600)
    return Measure(max(ages), len(ages), detail=f"Hours since the stalest of {len(ages)} collection(s) was indexed.")


def retrieval_recall(f: UseCaseFacts, w: Window) -> Measure:
    latest: dict = {}
    for run in f.retrieval_runs:
        if run.finished_at < w.end and run.recall10 is not None:
            latest[run.collection_id] = run
    if not latest:
        return _none("No retrieval eval run on a linked collection: run one from the collection's page.")
    recall = min(r.recall10 for r in latest.values())
    latencies = [r.latency_ms for r in latest.values() if r.latency_ms is not None]
    speed = f"; query P50 {max(latencies):,.0f} ms" if latencies else ""
    return Measure(recall, len(latest), detail=f"recall@10 of the latest retrieval eval (worst collection){speed}.")


def eval_coverage(f: UseCaseFacts, w: Window) -> Measure:
    if not f.production_prompts:
        return _none("No linked prompt has a production version.")
    covered = sum(1 for p in f.production_prompts if p in f.gated_prompts
                  and any(t < w.end for t in f.evaluated_prompts.get(p, [])))
    n = len(f.production_prompts)
    return _rate(covered, n, f"{covered} of {n} production prompts have an eval gate and a run of that version.")


def regression_escapes(f: UseCaseFacts, w: Window) -> Measure:
    """An escape is what the incidents' metrics count (the post-incident review says a release caused it); an
    incident without a review yet counts when it names a prompt version, and the detail says how many did."""
    detected = [i for i in f.incidents if w.has(i.detected_at)]
    reviewed = sum(1 for i in detected if i.review_escape)
    unreviewed = sum(1 for i in detected if i.review_escape is None and i.prompt_versions)
    escapes = reviewed + unreviewed
    releases = sum(1 for t in f.promotions if w.has(t))
    if not releases and not escapes:
        return _none("No production promotion of a linked prompt in the window.")
    base = max(releases, escapes)  # an escape of an earlier release still counts against this window
    return _rate(escapes, base, f"{reviewed} incident(s) whose review flags a regression escape and {unreviewed} "
                                f"without a review yet naming a prompt version, over {releases} production "
                                f"promotion(s).")


def mttr(f: UseCaseFacts, w: Window) -> Measure:
    """The incidents' MTTR (apps/incidents/metrics.py): minutes from detection to resolution of the Sev1/Sev2
    incidents detected in the window and resolved (an open one does not count yet), their median."""
    durations = Durations()
    for i in f.incidents:
        if i.severity <= 2 and w.has(i.detected_at):
            durations.add_times(i.detected_at, i.mitigated_at, i.resolved_at)
    if durations.ttr_median is None:
        return _none("No Sev1/Sev2 incident of the use case detected in the window is resolved yet.")
    n = len(durations.ttr)
    return Measure(durations.ttr_median, n, detail=f"Median minutes from detection to resolution over {n} "
                                                   f"resolved Sev1/Sev2 incident(s) detected in the window.")


def experimentation(f: UseCaseFacts, w: Window) -> Measure:
    if not f.prompt_ids:
        return _none("No prompt linked to the use case: experiments split a catalog prompt's traffic.")
    since = w.end - EXPERIMENT_SPAN
    started = sum(1 for t in f.experiment_starts if since <= t < w.end)
    # A measured zero (prompts linked, none tried): the seed's KPI is exactly whether teams experiment.
    return Measure(started, started, detail=f"{started} experiment(s) started in the 91 days to the window's end.")


# --- the table ----------------------------------------------------------------------------------------------

KPIS: dict[str, Kpi] = {k.key: k for k in [
    Kpi("adoption", "Adoption (active users / target)", "ratio", "higher", adoption, _tiers(0.6, 0.6, 0.6),
        "Send the OpenAI `user` field through the gateway and set target users.", "gateway_key"),
    # The seed's "+15-30 % per quarter": a riskier feature is rolled out more carefully, so it is asked less growth.
    Kpi("adoption_growth", "Adoption growth (active users, quarter on quarter)", "growth", "higher",
        adoption_growth, _tiers(0.3, 0.2, 0.15), "Send the OpenAI `user` field through the gateway.", "gateway_key"),
    Kpi("task_success", "Task success rate", "ratio", "higher", task_success, _tiers(0.7, 0.8, 0.9),
        "POST /api/v1/feedback (thumbs or score) with the use_case_id.", "feedback"),
    Kpi("override_rate", "Human override / escalation rate", "ratio", "lower", override_rate,
        _tiers(0.2, 0.15, 0.1), "POST /api/v1/feedback with a correction (an override).", "feedback"),
    Kpi("groundedness", "Groundedness", "ratio", "higher", groundedness, _tiers(0.85, 0.9, 0.95),
        "A groundedness evaluator in the production version's eval runs.", "eval_run"),
    Kpi("live_groundedness", "Live groundedness (mean)", "ratio", "higher", live_groundedness,
        _tiers(0.85, 0.9, 0.95), "RAG answers of a linked collection, or groundedness on POST /api/v1/feedback.",
        "collection"),
    Kpi("hallucination", "Hallucination rate (golden set)", "ratio", "lower", hallucination,
        _tiers(0.05, 0.03, 0.02), "A “hallucination” evaluator in the production version's eval runs.", "eval_run"),
    Kpi("safety_violations", "Safety policy violation rate", "ratio", "lower", safety_violations,
        _tiers(0.01, 0.005, 0.001), _GATEWAY, "gateway_key"),
    Kpi("latency_p50", "Latency P50", "ms", "lower", _latency(0.5), _tiers(2000, 2000, 2000), _GATEWAY,
        "gateway_key"),
    Kpi("latency_p95", "Latency P95", "ms", "lower", _latency(0.95), _tiers(10000, 8000, 6000), _GATEWAY,
        "gateway_key"),
    Kpi("availability", "Availability", "ratio", "higher", availability, _tiers(0.995, 0.997, 0.999), _GATEWAY,
        "gateway_errors"),
    Kpi("cost_per_success", "Cost per successful outcome", "usd", "lower", cost_per_success,
        _tiers(0.05, 0.05, 0.05), "Gateway traffic and POST /api/v1/feedback (thumbs or score).", "gateway_key",
        mode="change"),
    Kpi("tokens_per_request", "Tokens per request (median)", "tokens", "lower", _tokens(0.5),
        _tiers(0.1, 0.1, 0.1), _GATEWAY, "gateway_key", mode="change"),
    Kpi("tokens_p95", "Tokens per request (P95)", "tokens", "lower", _tokens(0.95),
        _tiers(0.1, 0.1, 0.1), _GATEWAY, "gateway_key", mode="change"),
    Kpi("index_freshness", "Index freshness", "hours", "lower", index_freshness, _tiers(168, 72, 24),
        "Link a RAG collection and index it.", "collection"),
    Kpi("retrieval_recall", "Retrieval recall proxy (recall@10)", "ratio", "higher", retrieval_recall,
        _tiers(0.7, 0.8, 0.9), "A retrieval eval run on a linked collection.", "collection"),
    Kpi("eval_coverage", "Evaluation coverage", "ratio", "higher", eval_coverage, _tiers(0.5, 0.7, 0.8),
        "An eval gate and a run for each production prompt.", "eval_gates"),
    Kpi("regression_escapes", "Regression escape rate", "ratio", "lower", regression_escapes,
        _tiers(0.2, 0.1, 0.05), "Incidents whose review flags a regression escape (without a review: naming a "
        "prompt version), over production promotions.", "incidents"),
    Kpi("mttr", "MTTR (Sev1/Sev2)", "minutes", "lower", mttr, _tiers(120, 90, 60),
        "Resolved Sev1/Sev2 incidents of the use case (detection to resolution).", "incidents"),
    Kpi("experimentation", "Rate of experimentation (per quarter)", "count", "higher", experimentation,
        _tiers(1, 1, 1), "Link a prompt to the use case and run an experiment on it.", "experiments"),
]}


# Column headings of the portfolio (the full label is their tooltip).
SHORT = {"adoption": "Adopt.", "adoption_growth": "Growth", "tokens_p95": "Tok P95", "task_success": "Success", "override_rate": "Overr.", "groundedness": "Ground.", "live_groundedness": "Live gr.",
         "hallucination": "Halluc.", "safety_violations": "Safety", "latency_p50": "P50", "latency_p95": "P95",
         "availability": "Avail.", "cost_per_success": "$/succ.", "tokens_per_request": "Tok P50",
         "index_freshness": "Fresh.", "retrieval_recall": "Recall", "eval_coverage": "Eval cov.",
         "regression_escapes": "Escapes", "mttr": "MTTR", "experimentation": "Exper."}


def default_target(kpi: Kpi, tier: str) -> float | None:
    return kpi.targets.get(tier or "", kpi.targets.get(""))


def target_for(kpi: Kpi, facts: UseCaseFacts, explicit: dict) -> float | None:
    """The target in force: the one the owner set on the scorecard, else (availability) the availability SLO's
    own target, else the tier's default."""
    if kpi.key in explicit:
        return explicit[kpi.key]
    if kpi.key == "availability" and facts.availability_slo is not None:
        return facts.availability_slo.target
    return default_target(kpi, facts.tier)


def _meets(x: float, target: float, better: str) -> bool:
    return x >= target if better == "higher" else x <= target


def status_of(kpi: Kpi, measure: Measure, target: float | None, previous: float | None = None) -> Status:
    """missed: the target is not met; at risk: met, but within the margin of it (10 % of the target, or 5 points
    of a change-mode KPI's allowed rise), or a rate whose 95 % interval crosses it; met otherwise."""
    if measure.value is None:
        return Status.NO_DATA
    if target is None:
        return Status.NO_TARGET
    if kpi.mode == "change":
        if not previous:
            return Status.NO_TARGET  # nothing to compare with yet
        rise = (measure.value - previous) / previous
        if rise > target:
            return Status.MISSED
        return Status.AT_RISK if rise > target - AT_RISK_CHANGE else Status.MET
    if not _meets(measure.value, target, kpi.better):
        return Status.MISSED
    if abs(measure.value - target) <= AT_RISK_MARGIN * abs(target):
        return Status.AT_RISK
    if measure.ci is not None and measure.ci[0] is not None:
        far = measure.ci[0] if kpi.better == "higher" else measure.ci[1]
        if not _meets(far, target, kpi.better):
            return Status.AT_RISK
    return Status.MET


def display(kpi: Kpi, value: float | None) -> str:
    """The value as the pages show it ("—" for no data)."""
    if value is None:
        return "—"
    if kpi.unit == "ratio":
        return f"{value * 100:.1f} %" if value < 0.995 or value >= 1 else f"{value * 100:.2f} %"
    if kpi.unit == "growth":
        return f"{value * 100:+.1f} %"
    if kpi.unit == "ms":
        return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"
    if kpi.unit == "usd":
        return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"
    if kpi.unit == "hours":
        return f"{value:.1f} h"
    if kpi.unit == "minutes":
        return f"{value:.0f} min"
    return f"{value:,.0f}"


def display_target(kpi: Kpi, target: float | None) -> str:
    if target is None:
        return "—"
    if kpi.mode == "change":
        return f"rise ≤ {target * 100:.0f} % vs the previous window"
    return ("≥ " if kpi.better == "higher" else "≤ ") + display(kpi, target)
