"""The experiment statistics against reference implementations (scipy), without the database: assignment
weights and stickiness (chi-square on 10,000 units), the mSPRT against numerical integration and under
continuous peeking, Wilson and percentile intervals, and the portal's own chi-square."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as scipy_stats

from apps.experiments import stats
from apps.gateway.splits import Arm, assign, bucket

UNITS = [f"user-{n}" for n in range(10_000)]


def _counts(arms, salt: str) -> list[int]:
    chosen = [assign(arms, salt, unit).key for unit in UNITS]
    return [chosen.count(arm.key) for arm in arms]


@pytest.mark.parametrize("weights", [(90, 10), (50, 30, 20)])
def test_assignments_follow_the_weights_by_chi_square(weights):
    arms = tuple(Arm(key=f"arm-{i}", weight=w, label="production") for i, w in enumerate(weights))
    observed = _counts(arms, salt="5f0c1e2d3b4a6978")
    statistic, p_value = stats.chi_square(observed, list(weights))
    reference = scipy_stats.chisquare(observed, [len(UNITS) * w / sum(weights) for w in weights])
    assert statistic == pytest.approx(reference.statistic) and p_value == pytest.approx(reference.pvalue)
    assert p_value > 0.01  # the split is what the weights say


def test_a_unit_always_gets_the_same_arm_and_another_salt_reshuffles_independently():
    arms = (Arm("control", 50, "production"), Arm("candidate", 50, "staging"))
    first = [assign(arms, "salt-a", unit).key for unit in UNITS[:2000]]
    assert first == [assign(arms, "salt-a", unit).key for unit in UNITS[:2000]]  # sticky
    second = [assign(arms, "salt-b", unit).key for unit in UNITS[:2000]]
    table = [[sum(1 for a, b in zip(first, second, strict=True) if (a, b) == (x, y)) for y in ("control", "candidate")]
             for x in ("control", "candidate")]
    assert scipy_stats.chi2_contingency(table).pvalue > 0.01  # two experiments' assignments are independent
    assert all(0 <= bucket("salt-a", unit) < 1 for unit in UNITS[:100])


@pytest.mark.parametrize("df", [1, 2, 4, 9])
def test_the_own_chi_square_tail_matches_scipy(df):
    for x in (0.01, 0.5, 1, 3.84, 7.5, 20, 60):
        assert stats.chi2_sf(x, df) == pytest.approx(scipy_stats.chi2.sf(x, df), rel=1e-9, abs=1e-14)


@pytest.mark.parametrize(("k", "n"), [(0, 20), (7, 20), (20, 20), (412, 1000)])
def test_the_wilson_interval_matches_scipy(k, n):
    low, high = stats.wilson(k, n)
    reference = scipy_stats.binomtest(k, n).proportion_ci(method="wilson")
    assert (low, high) == (pytest.approx(reference.low), pytest.approx(reference.high))
    assert stats.wilson(0, 0) is None


@pytest.mark.parametrize(("x0", "n0", "x1", "n1"), [(300, 1000, 345, 1000), (40, 200, 40, 180), (90, 400, 70, 420)])
def test_the_msprt_ratio_is_the_normal_mixture_integrated_numerically(x0, n0, x1, n1):
    tau2 = 0.05**2
    test = stats.msprt(x0, n0, x1, n1, tau2=tau2, alpha=0.05)
    p0, p1 = x0 / n0, x1 / n1
    theta_hat, variance = p1 - p0, p0 * (1 - p0) / n0 + p1 * (1 - p1) / n1
    sd = math.sqrt(variance)

    def integrand(theta):  # likelihood ratio of θ against 0, weighted by the N(0, τ²) mixing density
        return (scipy_stats.norm.pdf(theta_hat, theta, sd) / scipy_stats.norm.pdf(theta_hat, 0, sd)
                * scipy_stats.norm.pdf(theta, 0, math.sqrt(tau2)))

    reference, _error = integrate.quad(integrand, -1, 1, points=[0, theta_hat])
    assert math.exp(test.log_ratio) == pytest.approx(reference, rel=1e-6)
    assert test.p_value == pytest.approx(min(1.0, 1 / reference), rel=1e-6)


def test_the_always_valid_interval_ends_where_the_ratio_crosses_one_over_alpha():
    test = stats.msprt(300, 1000, 345, 1000, tau2=0.0025, alpha=0.05)
    variance = 0.3 * 0.7 / 1000 + 0.345 * 0.655 / 1000
    for edge in (test.low, test.high):  # shifting the data by the edge puts Λ exactly at 1/α
        shifted = test.difference - edge
        log_ratio = 0.5 * math.log(variance / (variance + 0.0025)) + shifted**2 * 0.0025 / (
            2 * variance * (variance + 0.0025))
        assert math.exp(log_ratio) == pytest.approx(20, rel=1e-9)
    assert (test.low > 0) == test.significant(0.05)


def test_peeking_after_every_batch_keeps_the_msprt_false_positive_rate_under_alpha():
    """A/A experiments read 40 times: the mSPRT rejects at most α of them, the naive z-test far more."""
    rng = np.random.default_rng(7)
    sims, peeks, batch, rate = 1500, 40, 100, 0.3
    a = rng.binomial(batch, rate, size=(sims, peeks)).cumsum(axis=1)
    b = rng.binomial(batch, rate, size=(sims, peeks)).cumsum(axis=1)
    n = batch * np.arange(1, peeks + 1)
    msprt_rejects = naive_rejects = 0
    for i in range(sims):
        tests = [stats.msprt(int(a[i, j]), int(n[j]), int(b[i, j]), int(n[j]), tau2=0.0025) for j in range(peeks)]
        msprt_rejects += any(t.p_value < 0.05 for t in tests)
        naive_rejects += any(abs(t.difference) / math.sqrt(2 * rate * (1 - rate) / n[j]) > stats.Z95
                             for j, t in enumerate(tests))
    assert msprt_rejects / sims <= 0.05
    assert naive_rejects / sims > 0.1  # why a fixed-horizon test may not be read this way


@pytest.mark.parametrize("n", [40, 200, 1000])
@pytest.mark.parametrize("q", [0.5, 0.95])
def test_the_percentile_interval_covers_at_least_95_percent(n, q):
    low, high = stats.quantile_ci(n, q)
    upper = n + 1 if high is None else high  # None: no upper bound (the interval runs past the largest value)
    coverage = scipy_stats.binom.cdf(upper - 1, n, q) - scipy_stats.binom.cdf(low - 1, n, q)
    assert coverage >= 0.945 and 1 <= low <= upper <= n + 1
    assert (high is None) == (n == 40 and q == 0.95)  # 40 calls cannot bound a p95 from above


def test_cost_per_success_is_the_ratio_of_means_with_a_delta_method_interval():
    rng = np.random.default_rng(3)
    cost, success = rng.gamma(2, 0.001, size=800), (rng.random(800) < 0.6).astype(float)
    ratio, low, high = stats.ratio_ci(cost.sum(), (cost**2).sum(), success.sum(), success.sum(),
                                      (cost * success).sum(), 800)
    assert ratio == pytest.approx(cost.sum() / success.sum())
    boot = [(cost[idx].sum() / success[idx].sum()) for idx in rng.integers(0, 800, size=(400, 800))]
    assert low == pytest.approx(np.percentile(boot, 2.5), rel=0.05)  # the bootstrap agrees
    assert high == pytest.approx(np.percentile(boot, 97.5), rel=0.05)
    assert stats.ratio_ci(1.0, 1.0, 0, 0, 0, 10) is None
