"""Statistics for eval runs, in numpy: confidence intervals, paired comparisons and agreement.

- Wilson score interval for a pass rate (well-behaved at 0, 1 and small n).
- Percentile bootstrap for a mean score (fixed seed: the same run always reports the same interval).
- Paired bootstrap for the mean difference of two runs over the same items.
- Exact McNemar test (two-sided binomial on the discordant pairs) for pass/fail changes.
- Cohen's kappa for a judge's agreement with human labels.
- pass@1 / pass@N / pass^N over repetitions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054
SEED = 20240601
BOOTSTRAP_ITERATIONS = 2000


@dataclass(frozen=True)
class Interval:
    value: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high}


def wilson_interval(passed: int, total: int, z: float = Z95) -> Interval:
    if total <= 0:
        return Interval(None, None, None)
    p = passed / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_mean_interval(values: Sequence[float], iterations: int = BOOTSTRAP_ITERATIONS,
                            seed: int = SEED, level: float = 0.95) -> Interval:
    data = np.asarray([v for v in values if v is not None], dtype=float)
    if data.size == 0:
        return Interval(None, None, None)
    mean = float(data.mean())
    if data.size == 1:
        return Interval(mean, mean, mean)
    rng = np.random.default_rng(seed)
    means = _resampled_means(data, iterations, rng)
    alpha = (1 - level) / 2
    return Interval(mean, float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)))


def _resampled_means(data: np.ndarray, iterations: int, rng: np.random.Generator) -> np.ndarray:
    n = data.size
    chunk = max(1, 2_000_000 // n)  # bound memory: at most ~2M indexes at a time
    out = []
    for start in range(0, iterations, chunk):
        size = min(chunk, iterations - start)
        idx = rng.integers(0, n, size=(size, n))
        out.append(data[idx].mean(axis=1))
    return np.concatenate(out)


@dataclass(frozen=True)
class PairedBootstrap:
    mean_delta: float | None
    low: float | None
    high: float | None
    p_value: float | None
    n: int

    def as_dict(self) -> dict:
        return {"mean_delta": self.mean_delta, "low": self.low, "high": self.high, "p_value": self.p_value,
                "n": self.n}


def paired_bootstrap(a: Sequence[float], b: Sequence[float], iterations: int = BOOTSTRAP_ITERATIONS,
                     seed: int = SEED) -> PairedBootstrap:
    """Mean of (b - a) over paired items, its 95% interval, and a two-sided p-value for "no difference"."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    diffs = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    n = int(diffs.size)
    if n == 0:
        return PairedBootstrap(None, None, None, None, 0)
    mean = float(diffs.mean())
    if n == 1 or np.all(diffs == diffs[0]):
        p = 1.0 if mean == 0 else 0.0 if n > 1 else 1.0
        return PairedBootstrap(mean, mean, mean, p, n)
    rng = np.random.default_rng(seed)
    means = _resampled_means(diffs, iterations, rng)
    low, high = float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))
    # Two-sided: how often the resampled mean falls on the other side of zero (shifted-null approximation).
    below = float(np.mean(means <= 0))
    above = float(np.mean(means >= 0))
    p_value = min(1.0, 2 * min(below, above))
    return PairedBootstrap(mean, low, high, p_value, n)


def binomial_cdf(k: int, n: int, p: float = 0.5) -> float:
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(0, k + 1))


@dataclass(frozen=True)
class McNemar:
    regressions: int  # passed before, fails now (b)
    improvements: int  # failed before, passes now (c)
    p_value: float

    def as_dict(self) -> dict:
        return {"regressions": self.regressions, "improvements": self.improvements, "p_value": self.p_value}


def mcnemar_exact(regressions: int, improvements: int) -> McNemar:
    """Exact McNemar: under "no change", each discordant pair is a fair coin; two-sided binomial p-value."""
    n = regressions + improvements
    if n == 0:
        return McNemar(regressions, improvements, 1.0)
    p = min(1.0, 2 * binomial_cdf(min(regressions, improvements), n, 0.5))
    return McNemar(regressions, improvements, p)


def cohens_kappa(a: Sequence, b: Sequence) -> float | None:
    """Agreement beyond chance between two raters over the same cases; None when undefined (one class only
    on both sides, or no cases)."""
    if len(a) != len(b):
        raise ValueError("both raters must label the same cases")
    n = len(a)
    if n == 0:
        return None
    classes = sorted(set(a) | set(b), key=str)
    observed = sum(1 for x, y in zip(a, b, strict=True) if x == y) / n
    expected = sum((sum(1 for x in a if x == c) / n) * (sum(1 for y in b if y == c) / n) for c in classes)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1 - expected)


def kappa_words(kappa: float | None) -> str:
    """Landis & Koch's reading of kappa."""
    if kappa is None:
        return "undefined"
    for limit, words in ((0.0, "poor"), (0.2, "slight"), (0.4, "fair"), (0.6, "moderate"), (0.8, "substantial")):
        if kappa <= limit:
            return words
    return "almost perfect"


@dataclass(frozen=True)
class RepetitionRates:
    pass_at_1: float | None  # expected pass rate of one try: mean over items of (passes / tries)
    pass_at_n: float | None  # share of items passing at least once in N tries
    pass_hat_n: float | None  # share of items passing every one of N tries (pass^N)
    items: int
    repetitions: int

    def as_dict(self) -> dict:
        return {"pass_at_1": self.pass_at_1, "pass_at_n": self.pass_at_n, "pass_hat_n": self.pass_hat_n,
                "items": self.items, "repetitions": self.repetitions}


def repetition_rates(per_item: dict) -> RepetitionRates:
    """per_item: {item: [passed bool per repetition]} (unscored repetitions already left out)."""
    rows = [v for v in per_item.values() if v]
    if not rows:
        return RepetitionRates(None, None, None, 0, 0)
    reps = max(len(v) for v in rows)
    return RepetitionRates(
        pass_at_1=sum(sum(v) / len(v) for v in rows) / len(rows),
        pass_at_n=sum(1 for v in rows if any(v)) / len(rows),
        pass_hat_n=sum(1 for v in rows if all(v)) / len(rows),
        items=len(rows), repetitions=reps,
    )


def percentile(values: Sequence[float], pct: float) -> float | None:
    data = [v for v in values if v is not None]
    if not data:
        return None
    return float(np.percentile(np.asarray(data, dtype=float), pct))
