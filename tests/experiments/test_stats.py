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


# --- per unit (ADR 0117) ------------------------------------------------------------------------------------------

def _unit_sums(x, y) -> tuple[float, float, float, float, float, int]:
    """Σx, Σx², Σy, Σy², Σxy, k of per-unit sums, in the order stats.ratio_variance takes them."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return float(x.sum()), float((x * x).sum()), float(y.sum()), float((y * y).sum()), float((x * y).sum()), len(x)


def test_a_rate_per_unit_is_the_ratio_of_sums_with_the_delta_method_variance_worked_by_hand():
    # three users: 2 of 3 calls succeeded, 0 of 1, 4 of 4. R = 6 / 8 = 0.75.
    # residuals s − R·o: 2 − 2.25 = −0.25, 0 − 0.75 = −0.75, 4 − 3 = 1; their squares add up to 1.625.
    # Var R = 1.625 / (k (k − 1) ȳ²) with k = 3, ȳ = 8 / 3: 1.625 / (6 · 64 / 9) = 14.625 / 384.
    ratio, variance = stats.ratio_variance(*_unit_sums([2, 0, 4], [3, 1, 4]))
    assert ratio == 0.75 and variance == pytest.approx(14.625 / 384)
    # eight independent calls would claim Var = p (1 − p) / n = 0.1875 / 8, a narrower interval: the calls of
    # one user are not independent trials
    assert variance > 0.75 * 0.25 / 8
    assert stats.ratio_variance(*_unit_sums([2], [3])) is None  # one unit: no variance between units


def _clustered_arm(rng, units: int, rate: float, concentration: float):
    """Per-unit sums of one arm: users with 1 to ~100 calls (heavy-tailed), each with their own success rate drawn
    from Beta around `rate` (small concentration: strong within-user correlation), independent of their volume."""
    calls = rng.geometric(1 / 15, size=units).clip(max=150)
    own = rng.beta(rate * concentration, (1 - rate) * concentration, size=units)
    return rng.binomial(calls, own), calls


def test_per_unit_intervals_keep_95_percent_coverage_with_many_correlated_calls_per_user_and_call_level_ones_do_not():
    rng = np.random.default_rng(11)
    rate, sims = 0.6, 400
    per_unit = per_call = 0
    for _ in range(sims):
        successes, calls = _clustered_arm(rng, 200, rate, concentration=1.0)
        ratio, variance = stats.ratio_variance(*_unit_sums(successes, calls))
        per_unit += abs(ratio - rate) <= stats.Z95 * math.sqrt(variance)
        low, high = stats.wilson(int(successes.sum()), int(calls.sum()))
        per_call += low <= rate <= high
    assert 0.93 <= per_unit / sims <= 0.97  # nominal
    assert per_call / sims < 0.6  # the calls-as-rows interval is far too narrow


def test_the_msprt_on_the_per_unit_variance_keeps_alpha_under_peeking_and_the_call_level_one_does_not():
    """A/A experiments with correlated calls, read after every 25 users per arm: the mSPRT on the per-unit
    variance rejects at most α of them; the same test treating calls as independent trials far more."""
    rng = np.random.default_rng(5)
    sims, peeks, batch, rate = 300, 12, 25, 0.4
    per_unit = per_call = 0
    for _ in range(sims):
        arms = [_clustered_arm(rng, peeks * batch, rate, concentration=1.0) for _ in range(2)]
        unit_rejects = call_rejects = False
        for j in range(1, peeks + 1):
            (s0, o0), (s1, o1) = ((s[:j * batch], o[:j * batch]) for s, o in arms)
            (r0, v0), (r1, v1) = stats.ratio_variance(*_unit_sums(s0, o0)), stats.ratio_variance(*_unit_sums(s1, o1))
            unit_rejects |= stats.msprt_normal(r1 - r0, v0 + v1, tau2=0.0025).p_value < 0.05
            call_rejects |= stats.msprt(int(s0.sum()), int(o0.sum()), int(s1.sum()), int(o1.sum()),
                                        tau2=0.0025).p_value < 0.05
        per_unit += unit_rejects
        per_call += call_rejects
    assert per_unit / sims <= 0.05
    assert per_call / sims > 0.5


def test_the_binomial_msprt_is_the_normal_one_with_the_binomial_variance():
    binomial = stats.msprt(40, 100, 55, 100, tau2=0.0025)
    normal = stats.msprt_normal(0.15, 0.4 * 0.6 / 100 + 0.55 * 0.45 / 100, tau2=0.0025)
    assert [getattr(binomial, f) for f in ("difference", "low", "high", "p_value")] == \
        pytest.approx([getattr(normal, f) for f in ("difference", "low", "high", "p_value")])
