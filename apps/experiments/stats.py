"""The statistics of the experiment page (ADR 0109): pure functions, no database, no scipy at run time
(tests/experiments/test_stats.py checks each against scipy).

- `msprt`: the mixture sequential probability ratio test (Johari, Pekelis, Walsh 2017; Robbins 1970) on a
  difference of two proportions, normal approximation, mixing prior N(0, tau²). Its p-value and confidence
  interval are *always valid*: the page may be read after every call without inflating the error rate.
- `ratio_variance` / `ratio_ci`: a ratio of per-unit sums (Σ successes / Σ outcomes over the arm's end users
  or tenants) and its delta-method variance with the units as independent clusters: the randomisation unit is
  the unit of analysis, so one user's many correlated calls do not narrow the interval (ADR 0117). The mSPRT
  takes that variance (`msprt_normal`), so the sequential test stays valid per unit too.
- `wilson`: the Wilson score interval of a rate of independent trials; `quantile_ci`: a distribution-free
  interval of a percentile (binomial order statistics);
- `chi_square`: Pearson's test of observed counts against shares (the regularised incomplete gamma function
  written out), used by the assignment tests and the sample-ratio-mismatch alarm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of successes / n; None when n is 0."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Sequential:
    """An mSPRT comparison of a treatment's rate with the control's (treatment − control)."""

    difference: float
    low: float  # the always-valid (1 − alpha) confidence interval of the difference
    high: float
    p_value: float  # always valid
    log_ratio: float  # log of the mixture likelihood ratio

    def significant(self, alpha: float) -> bool:
        return self.p_value < alpha


def msprt(x_control: int, n_control: int, x_treatment: int, n_treatment: int, *, tau2: float,
          alpha: float = 0.05) -> Sequential | None:
    """The mixture SPRT of H0 "same rate" for two binomial samples (independent trials); None while either
    sample is empty. See `msprt_normal`; here V = p0(1 − p0)/n0 + p1(1 − p1)/n1."""
    if n_control <= 0 or n_treatment <= 0:
        return None
    p0, p1 = x_control / n_control, x_treatment / n_treatment
    return msprt_normal(p1 - p0, p0 * (1 - p0) / n_control + p1 * (1 - p1) / n_treatment, tau2=tau2, alpha=alpha)


def msprt_normal(difference: float, variance: float, *, tau2: float, alpha: float = 0.05) -> Sequential | None:
    """The mixture SPRT of H0 "no difference" for an estimate θ̂ that is approximately N(θ, V) (V: any consistent
    variance, e.g. the per-unit delta-method one of two ratios of sums).

    The mixture likelihood ratio over θ ~ N(0, tau2) is Λ = sqrt(V / (V + τ²)) · exp(θ̂² τ² / (2 V (V + τ²)));
    the p-value is min(1, 1/Λ) and the interval is every θ that Λ(θ) < 1/α keeps. A variance of 0 (all or none
    succeeded in both arms) says nothing yet.
    """
    if tau2 <= 0:
        return None
    if variance <= 0:
        return Sequential(difference, -1.0, 1.0, 1.0, 0.0)
    log_ratio = 0.5 * math.log(variance / (variance + tau2)) + \
        difference * difference * tau2 / (2 * variance * (variance + tau2))
    p_value = min(1.0, math.exp(-log_ratio))
    half = math.sqrt(variance * (variance + tau2) / tau2 *
                     (2 * math.log(1 / alpha) + math.log((variance + tau2) / variance)))
    return Sequential(difference, max(-1.0, difference - half), min(1.0, difference + half), p_value, log_ratio)


def quantile_ci(n: int, q: float, z: float = Z95) -> tuple[int, int | None] | None:
    """The 1-based ranks (low, high) of the order statistics that bound the q-quantile of a sample of n with
    ~95 % confidence (normal approximation of the binomial, Conover's ranks); None when n is 0. `high` is None
    when the sample is too small to bound the quantile from above (a p95 of a few dozen calls)."""
    if n <= 0:
        return None
    spread = z * math.sqrt(n * q * (1 - q))
    low = max(1, math.floor(n * q - spread))
    high = math.ceil(n * q + spread) + 1
    return low, (high if high <= n else None)


def ratio_variance(sum_x: float, sum_x2: float, sum_y: float, sum_y2: float, sum_xy: float,
                   k: int) -> tuple[float, float] | None:
    """(R, Var R) of R = Σx / Σy over k independent units by the delta method, x and y each unit's sums (its
    successes and outcomes, say): Var R = Σ (x − R·y)² / (k (k − 1) ȳ²). None with fewer than 2 units or no y."""
    if k <= 1 or sum_y <= 0:
        return None
    ratio, mean_y = sum_x / sum_y, sum_y / k
    residuals = max(0.0, sum_x2 - 2 * ratio * sum_xy + ratio * ratio * sum_y2)  # Σ (x − R·y)²
    return ratio, residuals / (k * (k - 1) * mean_y * mean_y)


def ratio_ci(sum_x: float, sum_x2: float, sum_y: float, sum_y2: float, sum_xy: float, n: int,
             z: float = Z95) -> tuple[float, float, float] | None:
    """(ratio, low, high) of Σx / Σy over n units (or pairs) by the delta method; None without any y."""
    estimate = ratio_variance(sum_x, sum_x2, sum_y, sum_y2, sum_xy, n)
    if estimate is None:
        return None
    ratio, variance = estimate
    half = z * math.sqrt(variance)
    return ratio, max(0.0, ratio - half), ratio + half


def _upper_gamma_regularised(s: float, x: float) -> float:
    """Q(s, x) = Γ(s, x) / Γ(s): a series below s + 1, a continued fraction (Lentz) above."""
    if x <= 0:
        return 1.0
    log_prefix = s * math.log(x) - x - math.lgamma(s)
    if x < s + 1:
        term = total = 1.0 / s
        a = s
        for _ in range(1000):
            a += 1
            term *= x / a
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = x + 1 - s
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - s)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(log_prefix) * h


def chi2_sf(statistic: float, df: int) -> float:
    """P(χ²(df) ≥ statistic)."""
    return _upper_gamma_regularised(df / 2, statistic / 2)


def chi_square(observed: list[int], shares: list[float]) -> tuple[float, float]:
    """Pearson's statistic and p-value of observed counts against expected shares (normalised)."""
    total, weight = sum(observed), sum(shares)
    statistic = sum((o - total * s / weight) ** 2 / (total * s / weight) for o, s in zip(observed, shares,
                                                                                         strict=True))
    return statistic, chi2_sf(statistic, len(observed) - 1)
