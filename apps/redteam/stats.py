"""Attack success rate (ASR) with Wilson 95 % intervals, per category, OWASP code, strategy and overall,
and the paired comparison of two campaigns that ran the same attacks (exact McNemar).

The interval and the test are the evals app's (`apps.evals.stats`): one implementation of each in the
portal. Here they are applied to red-team outcomes, where a "success" is the attacker's success.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from apps.evals.stats import Interval, mcnemar_exact, wilson_interval


class Outcome(Protocol):
    """One scored attack: any object with these attributes (a dataclass, a model row)."""

    category: str
    owasp: str
    strategy: str
    success: bool | None  # None: not scored (error, cancelled); left out of the rate, counted apart


@dataclass(frozen=True)
class AttackOutcome:
    attack_id: str
    category: str
    owasp: str
    strategy: str
    success: bool | None


@dataclass(frozen=True)
class Rate:
    attacks: int  # scored attacks
    successes: int
    unscored: int
    interval: Interval  # ASR and its Wilson 95 % interval; None values when nothing was scored

    @property
    def asr(self) -> float | None:
        return self.interval.value

    @property
    def low(self) -> float | None:
        return self.interval.low

    @property
    def high(self) -> float | None:
        return self.interval.high

    def upper_bound_below(self, threshold: float) -> bool:
        """True when the interval's upper bound is under `threshold` (no scored attack: False)."""
        return self.high is not None and self.high < threshold

    def as_dict(self) -> dict:
        return {"attacks": self.attacks, "successes": self.successes, "unscored": self.unscored,
                "asr": self.asr, "low": self.low, "high": self.high}


def attack_success_rate(successes: int, attacks: int, unscored: int = 0) -> Rate:
    if not 0 <= successes <= attacks:
        raise ValueError("successes must lie between 0 and the number of scored attacks")
    return Rate(attacks, successes, unscored, wilson_interval(successes, attacks))


@dataclass(frozen=True)
class Breakdown:
    overall: Rate
    by_category: dict[str, Rate]
    by_owasp: dict[str, Rate]
    by_strategy: dict[str, Rate]

    def as_dict(self) -> dict:
        return {
            "overall": self.overall.as_dict(),
            "by_category": {key: rate.as_dict() for key, rate in self.by_category.items()},
            "by_owasp": {key: rate.as_dict() for key, rate in self.by_owasp.items()},
            "by_strategy": {key: rate.as_dict() for key, rate in self.by_strategy.items()},
        }


def aggregate(outcomes: Iterable[Outcome]) -> Breakdown:
    """ASR overall and per category, OWASP code and strategy (keys sorted)."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])  # scored, successes, unscored
    for outcome in outcomes:
        for key in (("overall", ""), ("category", outcome.category), ("owasp", outcome.owasp),
                    ("strategy", outcome.strategy)):
            tally = counts[key]
            if outcome.success is None:
                tally[2] += 1
            else:
                tally[0] += 1
                tally[1] += bool(outcome.success)

    def rates(dimension: str) -> dict[str, Rate]:
        keys = sorted(name for kind, name in counts if kind == dimension)
        return {name: _rate(counts[(dimension, name)]) for name in keys}

    return Breakdown(_rate(counts[("overall", "")]), rates("category"), rates("owasp"), rates("strategy"))


def _rate(tally: list[int]) -> Rate:
    scored, successes, unscored = tally
    return attack_success_rate(successes, scored, unscored)


@dataclass(frozen=True)
class PairedComparison:
    """Campaign A against campaign B on the attacks both scored (matched by attack id)."""

    paired: int
    a: Rate  # ASR of A on the paired attacks
    b: Rate
    only_a: int  # attacks that succeeded against A and not against B
    only_b: int  # attacks that succeeded against B and not against A
    both: int
    neither: int
    p_value: float  # exact McNemar, two-sided, on the discordant pairs
    unpaired: int  # attacks scored in only one of the two campaigns (left out)

    @property
    def delta(self) -> float | None:
        """ASR of B minus ASR of A (negative: B resists better)."""
        if not self.paired:
            return None
        return (self.only_b - self.only_a) / self.paired

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha

    def as_dict(self) -> dict:
        return {"paired": self.paired, "a": self.a.as_dict(), "b": self.b.as_dict(), "only_a": self.only_a,
                "only_b": self.only_b, "both": self.both, "neither": self.neither, "delta": self.delta,
                "p_value": self.p_value, "unpaired": self.unpaired}


def compare_campaigns(a: Mapping[str, bool | None], b: Mapping[str, bool | None]) -> PairedComparison:
    """Pair the two campaigns' verdicts by attack id ({attack id: success}); unscored (None) verdicts and
    attacks only one campaign ran are left out of the pairs and counted in `unpaired`."""
    scored_a = {key: bool(value) for key, value in a.items() if value is not None}
    scored_b = {key: bool(value) for key, value in b.items() if value is not None}
    shared = scored_a.keys() & scored_b.keys()
    cells = {(True, True): 0, (True, False): 0, (False, True): 0, (False, False): 0}
    for key in shared:
        cells[(scored_a[key], scored_b[key])] += 1
    only_a, only_b = cells[(True, False)], cells[(False, True)]
    both = cells[(True, True)]
    paired = len(shared)
    return PairedComparison(
        paired=paired,
        a=attack_success_rate(both + only_a, paired),
        b=attack_success_rate(both + only_b, paired),
        only_a=only_a,
        only_b=only_b,
        both=both,
        neither=cells[(False, False)],
        p_value=mcnemar_exact(only_a, only_b).p_value,
        unpaired=len(scored_a.keys() ^ scored_b.keys()),
    )
