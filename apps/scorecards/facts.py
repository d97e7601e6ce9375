"""What a KPI is computed from: the facts of one use case, gathered for every use case at once from rollups and
cheap aggregates (`apps/scorecards/sources.py`), and the windows they are read over. Plain data, no queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

WINDOW_DAYS = 28  # every KPI is read over the last 28 days (a predicate may ask for another span)
TREND_POINTS = 8  # the trend: the same KPI over the 28 days ending each of the last 8 weeks
TREND_STEP_DAYS = 7
EXPERIMENT_SPAN = timedelta(days=91)  # the rate of experimentation counts per quarter (the seed's "1-3 per quarter")
QUARTER_WEEKS = 13  # adoption growth: active end users in the 13 weeks (91 days) to a window's end vs the 13 before


@dataclass(frozen=True)
class Window:
    """[start, end) in UTC; day rollups count a day when it starts inside the window (today is partial)."""

    start: datetime
    end: datetime
    first_day: date = field(init=False, compare=False)
    last_day: date = field(init=False, compare=False)
    key: str = field(init=False, compare=False)

    def __post_init__(self):  # computed once: KPI functions test days against them millions of times
        object.__setattr__(self, "first_day", (self.start + timedelta(microseconds=-1)).date() + timedelta(days=1))
        object.__setattr__(self, "last_day", (self.end - timedelta(microseconds=1)).date())
        object.__setattr__(self, "key", f"{self.start.isoformat()}/{self.end.isoformat()}")

    @classmethod
    def ending(cls, end: datetime, days: int = WINDOW_DAYS) -> Window:
        return cls(end - timedelta(days=days), end)

    def has_day(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day

    def has(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end

    def previous(self) -> Window:
        return Window(self.start - (self.end - self.start), self.start)


def trend_windows(now: datetime, days: int = WINDOW_DAYS) -> list[Window]:
    """Oldest first; the last one is the current window. The one ending `days` ago is the previous window."""
    return [Window.ending(now - timedelta(days=TREND_STEP_DAYS * i), days) for i in range(TREND_POINTS - 1, -1, -1)]


@dataclass
class EvalRunFact:
    run_id: int
    finished_at: datetime
    evaluators: list  # the run summary's evaluator entries: {"name", "kind", "scored", "passed", ...}


@dataclass
class RetrievalFact:
    run_id: int
    collection_id: int
    finished_at: datetime
    recall10: float | None
    latency_ms: float | None


@dataclass
class IncidentFact:
    incident_id: int
    severity: int
    detected_at: datetime
    mitigated_at: datetime | None
    resolved_at: datetime | None
    prompt_versions: list
    review_escape: bool | None = None  # its post-incident review's regression-escape flag; None: no review yet


@dataclass
class SloFact:
    """The use case's availability SLO as last evaluated (apps.slos.selectors.slo_status): the scorecard's
    availability is its SLI, so the two pages show the same figure (ADR 0105's good and bad)."""

    slo_id: int
    target: float  # a fraction (99.5 % -> 0.995)
    window_days: int
    valid: int
    bad: int
    evaluated_at: datetime | None
    url: str


@dataclass
class UseCaseFacts:
    use_case_id: int
    team_id: int
    tier: str = ""
    target_users: int | None = None
    as_of: datetime | None = None  # the end of the latest window the facts were gathered for
    key_ids: list = field(default_factory=list)  # gateway keys bound to the use case, busiest first
    # day -> [requests, errors, refused, input_tokens, output_tokens, cost, unpriced]
    traffic: dict = field(default_factory=dict)
    latency: dict = field(default_factory=dict)  # day -> {bin: requests} (total latency)
    tokens: dict = field(default_factory=dict)  # day -> {token bin: calls} (input + output tokens, TokensDaily)
    availability_slo: SloFact | None = None
    sli: dict = field(default_factory=dict)  # day -> [valid, bad] of availability (SliHour), with an SLO only
    safety: dict = field(default_factory=dict)  # day -> calls with guardrail actions
    outcomes: dict = field(default_factory=dict)  # day -> [success, failure, overridden, feedback]
    live_groundedness: dict = field(default_factory=dict)  # day -> [scored live answers, sum of scores] (ADR 0121)
    active_users: dict = field(default_factory=dict)  # Window.key -> distinct end users
    # Window.last_day -> (distinct end users in the 13 weeks to it, in the 13 weeks before those)
    quarter_users: dict = field(default_factory=dict)
    prompt_ids: list = field(default_factory=list)  # linked prompts
    production_prompts: list = field(default_factory=list)  # linked prompts with a production version
    gated_prompts: set = field(default_factory=set)  # linked prompts with an eval gate
    evaluated_prompts: dict = field(default_factory=dict)  # prompt id -> finished_at of runs of its production version
    eval_runs: list = field(default_factory=list)  # EvalRunFact of production versions, oldest first
    promotions: list = field(default_factory=list)  # production label moves of linked prompts (datetimes)
    collection_ids: list = field(default_factory=list)
    indexed: dict = field(default_factory=dict)  # collection id -> sorted datetimes something was indexed
    retrieval_runs: list = field(default_factory=list)  # RetrievalFact, oldest first
    incidents: list = field(default_factory=list)  # IncidentFact of incidents naming the use case
    experiment_starts: list = field(default_factory=list)  # first starts of the use case's experiments, oldest first

    memo: dict = field(default_factory=dict, repr=False)  # sums already taken, per (kind, window)

    # --- sums over a window (each taken once per window: several KPIs read the same sums) --------------------
    def _sum(self, kind: str, series: dict, window: Window, width: int) -> list:
        cached = self.memo.get((kind, window.key))
        if cached is None:
            lo, hi = window.first_day, window.last_day
            cached = [0] * width
            for day, row in series.items():
                if lo <= day <= hi:
                    for i in range(width):
                        cached[i] += row[i]
            self.memo[(kind, window.key)] = cached
        return cached

    def traffic_sum(self, window: Window) -> list:
        return self._sum("traffic", self.traffic, window, 7)

    def outcome_sum(self, window: Window) -> list:
        return self._sum("outcomes", self.outcomes, window, 4)

    def live_groundedness_sum(self, window: Window) -> list:
        return self._sum("live_groundedness", self.live_groundedness, window, 2)

    def safety_sum(self, window: Window) -> int:
        lo, hi = window.first_day, window.last_day
        return sum(n for day, n in self.safety.items() if lo <= day <= hi)

    def sli_sum(self, window: Window) -> list:
        return self._sum("sli", self.sli, window, 2)

    def _bins(self, kind: str, series: dict, window: Window) -> dict:
        cached = self.memo.get((kind, window.key))
        if cached is None:
            lo, hi = window.first_day, window.last_day
            cached = {}
            for day, bins in series.items():
                if lo <= day <= hi:
                    for b, n in bins.items():
                        cached[b] = cached.get(b, 0) + n
            self.memo[(kind, window.key)] = cached
        return cached

    def latency_bins(self, window: Window) -> dict:
        return self._bins("latency", self.latency, window)

    def token_bins(self, window: Window) -> dict:
        return self._bins("tokens", self.tokens, window)
