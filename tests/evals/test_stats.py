"""Statistics against hand-computed values."""

import pytest

from apps.evals.stats import (
    binomial_cdf,
    bootstrap_mean_interval,
    cohens_kappa,
    kappa_words,
    mcnemar_exact,
    paired_bootstrap,
    repetition_rates,
    wilson_interval,
)


def test_wilson_interval_of_8_of_10():
    # p = 0.8; centre (0.8 + 1.96²/20) / (1 + 1.96²/10) = 0.71674; half-width 0.22658.
    interval = wilson_interval(8, 10)
    assert interval.value == 0.8
    assert interval.low == pytest.approx(0.4902, abs=1e-4)
    assert interval.high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_interval_at_the_edges_stays_inside_0_and_1():
    assert wilson_interval(0, 5).low == 0.0
    assert wilson_interval(5, 5).high == 1.0
    assert wilson_interval(0, 0).value is None


def test_exact_mcnemar_two_sided_binomial():
    # 1 regression vs 9 improvements: 2 · P(X ≤ 1 | n=10, p=½) = 2 · 11/1024.
    assert mcnemar_exact(1, 9).p_value == pytest.approx(22 / 1024)
    assert mcnemar_exact(0, 6).p_value == pytest.approx(2 / 64)
    assert mcnemar_exact(5, 5).p_value == 1.0
    assert mcnemar_exact(0, 0).p_value == 1.0
    assert binomial_cdf(1, 10) == pytest.approx(11 / 1024)


def test_cohens_kappa_of_the_textbook_table():
    # 20 both yes, 5 A-yes/B-no, 10 A-no/B-yes, 15 both no: po = 0.7, pe = 0.5·0.6 + 0.5·0.4 = 0.5 → κ = 0.4.
    a = [1] * 20 + [1] * 5 + [0] * 10 + [0] * 15
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    assert cohens_kappa(a, b) == pytest.approx(0.4)
    assert kappa_words(0.4) == "fair"


def test_cohens_kappa_perfect_and_undefined():
    assert cohens_kappa([True, False, True], [True, False, True]) == pytest.approx(1.0)
    assert cohens_kappa([True, True], [True, True]) is None  # one class on both sides: chance agreement is 1
    assert cohens_kappa([], []) is None


def test_paired_bootstrap_sees_no_difference_between_identical_runs():
    scores = [0.1, 0.5, 0.9, 0.4, 0.7]
    result = paired_bootstrap(scores, scores)
    assert result.mean_delta == 0 and result.p_value == 1.0


def test_paired_bootstrap_finds_a_consistent_improvement_significant():
    a = [0.2, 0.4, 0.5, 0.3, 0.6, 0.1, 0.4, 0.5, 0.3, 0.2] * 3
    b = [x + 0.2 + (0.05 if i % 2 else -0.05) for i, x in enumerate(a)]
    result = paired_bootstrap(a, b)
    assert result.mean_delta == pytest.approx(0.2)
    assert result.low < 0.2 < result.high and result.low > 0
    assert result.p_value < 0.01


def test_paired_bootstrap_calls_a_small_noisy_difference_noise():
    a = [0.5, 0.9, 0.1, 0.7, 0.3, 0.6]
    b = [0.6, 0.8, 0.2, 0.6, 0.4, 0.5]
    result = paired_bootstrap(a, b)
    assert result.low < 0 < result.high
    assert result.p_value > 0.3


def test_paired_bootstrap_is_reproducible():
    a, b = [0.1, 0.3, 0.8, 0.5], [0.2, 0.2, 0.9, 0.7]
    assert paired_bootstrap(a, b) == paired_bootstrap(a, b)


def test_bootstrap_mean_interval_brackets_the_mean():
    interval = bootstrap_mean_interval([0.0, 1.0] * 50)
    assert interval.value == 0.5 and interval.low < 0.5 < interval.high
    constant = bootstrap_mean_interval([0.7, 0.7, 0.7])
    assert (constant.low, constant.high) == pytest.approx((0.7, 0.7))


def test_repetition_rates():
    rates = repetition_rates({1: [True, True, False], 2: [False, False, False], 3: [True, True, True]})
    assert rates.pass_at_1 == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert rates.pass_at_n == pytest.approx(2 / 3)
    assert rates.pass_hat_n == pytest.approx(1 / 3)
    assert rates.repetitions == 3
