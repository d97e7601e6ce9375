"""Attack success rates with Wilson intervals, and the paired comparison of two campaigns, checked against
hand-computed values and a reference implementation (scipy when installed, else the interval solved as a
quadratic, a derivation independent of the one under test)."""

import importlib.util
import math

import pytest

from apps.redteam.stats import AttackOutcome, aggregate, attack_success_rate, compare_campaigns

Z = 1.959963984540054
HAVE_SCIPY = importlib.util.find_spec("scipy") is not None
GRID = [(0, 1), (1, 1), (0, 12), (12, 12), (3, 20), (7, 31), (37, 200), (500, 1000), (1, 1000)]


def reference_wilson(k: int, n: int) -> tuple[float, float]:
    if HAVE_SCIPY:
        from scipy.stats import binomtest  # why: optional reference, installed with the `local` extra

        interval = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        return interval.low, interval.high
    # Wilson's interval is the set of p with (k/n - p)^2 <= z^2 p (1 - p) / n: the roots of
    # (1 + z^2/n) p^2 - (2k/n + z^2/n) p + (k/n)^2 = 0.
    a, b, c = 1 + Z * Z / n, -(2 * k / n + Z * Z / n), (k / n) ** 2
    root = math.sqrt(b * b - 4 * a * c)
    return max(0.0, (-b - root) / (2 * a)), min(1.0, (-b + root) / (2 * a))


def reference_mcnemar(only_a: int, only_b: int) -> float:
    if HAVE_SCIPY:
        from scipy.stats import binomtest  # why: optional reference, installed with the `local` extra

        return binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue
    n, k = only_a + only_b, min(only_a, only_b)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def test_wilson_interval_of_3_successes_in_20_attacks_by_hand():
    # p = 0.15, z^2/n = 0.192073; centre = (0.15 + 0.096037) / 1.192073 = 0.206394;
    # half-width = 1.959964 * sqrt(0.006375 + 0.002401) / 1.192073 = 0.154025 -> [0.052369, 0.360419].
    rate = attack_success_rate(3, 20)
    assert rate.asr == 0.15
    assert rate.low == pytest.approx(0.052369, abs=1e-6)
    assert rate.high == pytest.approx(0.360419, abs=1e-6)


@pytest.mark.parametrize(("k", "n"), GRID)
def test_wilson_interval_matches_the_reference(k, n):
    low, high = reference_wilson(k, n)
    rate = attack_success_rate(k, n)
    assert rate.low == pytest.approx(low, abs=1e-9)
    assert rate.high == pytest.approx(high, abs=1e-9)


def test_no_scored_attack_has_no_rate_and_never_passes_a_threshold():
    rate = attack_success_rate(0, 0, unscored=4)
    assert (rate.asr, rate.low, rate.high, rate.unscored) == (None, None, None, 4)
    assert not rate.upper_bound_below(0.5)


def test_the_upper_bound_decides_a_threshold_not_the_point_estimate():
    few = attack_success_rate(0, 10)  # ASR 0, but the upper bound is ~0.28
    many = attack_success_rate(0, 200)  # upper bound ~0.019
    assert not few.upper_bound_below(0.05)
    assert many.upper_bound_below(0.05)


def test_more_successes_than_attacks_is_refused():
    with pytest.raises(ValueError):
        attack_success_rate(5, 4)


def outcomes():
    rows = []
    script = {  # (category, owasp, strategy): verdicts
        ("prompt_injection_direct", "LLM01", "plain"): [True, False, False, False],
        ("prompt_injection_direct", "LLM01", "base64"): [True, True, False, None],
        ("system_prompt_leakage", "LLM07", "plain"): [False, False, False],
        ("system_prompt_leakage", "LLM07", "base64"): [True, None],
    }
    for (category, owasp, strategy), verdicts in script.items():
        for index, verdict in enumerate(verdicts):
            rows.append(AttackOutcome(f"{category}-{strategy}-{index}", category, owasp, strategy, verdict))
    return rows


def test_asr_is_aggregated_overall_and_per_category_owasp_and_strategy():
    breakdown = aggregate(outcomes())
    assert (breakdown.overall.successes, breakdown.overall.attacks, breakdown.overall.unscored) == (4, 11, 2)
    assert breakdown.by_category["prompt_injection_direct"].successes == 3
    assert breakdown.by_category["prompt_injection_direct"].attacks == 7
    assert breakdown.by_category["system_prompt_leakage"].asr == pytest.approx(1 / 4)
    assert breakdown.by_owasp["LLM07"].unscored == 1
    assert breakdown.by_strategy["base64"].asr == pytest.approx(3 / 4)
    assert breakdown.by_strategy["plain"].asr == pytest.approx(1 / 7)
    assert list(breakdown.by_strategy) == ["base64", "plain"]
    low, high = reference_wilson(4, 11)
    assert (breakdown.overall.low, breakdown.overall.high) == (pytest.approx(low), pytest.approx(high))
    assert breakdown.as_dict()["overall"]["attacks"] == 11


def campaign(verdicts: str) -> dict:
    """'1' success, '0' resisted, '-' not scored; attack ids a0, a1, ..."""
    return {f"a{i}": {"1": True, "0": False, "-": None}[v] for i, v in enumerate(verdicts)}


def test_paired_comparison_counts_discordant_pairs_and_uses_exact_mcnemar():
    # A: 13 attacks succeed that B resists, 2 the other way round, 5 against both, 10 against neither.
    a = campaign("1" * 13 + "0" * 2 + "1" * 5 + "0" * 10)
    b = campaign("0" * 13 + "1" * 2 + "1" * 5 + "0" * 10)
    result = compare_campaigns(a, b)
    assert (result.only_a, result.only_b, result.both, result.neither, result.paired) == (13, 2, 5, 10, 30)
    # Exact two-sided binomial on 15 discordant pairs: 2 * (C(15,0) + C(15,1) + C(15,2)) / 2^15 = 242 / 32768.
    assert result.p_value == pytest.approx(242 / 32768)
    assert result.p_value == pytest.approx(reference_mcnemar(13, 2))
    assert result.significant()
    assert result.delta == pytest.approx((2 - 13) / 30)
    assert (result.a.successes, result.b.successes) == (18, 7)


@pytest.mark.parametrize(("only_a", "only_b"), [(1, 0), (2, 1), (3, 3), (4, 9), (0, 12), (20, 31)])
def test_mcnemar_p_value_matches_the_reference(only_a, only_b):
    a = campaign("1" * only_a + "0" * only_b + "1")
    b = campaign("0" * only_a + "1" * only_b + "1")
    assert compare_campaigns(a, b).p_value == pytest.approx(reference_mcnemar(only_a, only_b), abs=1e-12)


def test_only_attacks_both_campaigns_scored_are_paired():
    a = {"x": True, "y": False, "z": None, "only-in-a": True}
    b = {"x": False, "y": False, "z": True, "only-in-b": False}
    result = compare_campaigns(a, b)
    assert result.paired == 2
    assert result.unpaired == 3  # z is unscored in A; one attack each ran in one campaign only
    assert not result.significant()


def test_two_campaigns_with_nothing_in_common_have_no_difference():
    result = compare_campaigns({"x": True}, {"y": True})
    assert result.paired == 0
    assert result.delta is None
    assert result.p_value == 1.0


def test_identical_campaigns_show_no_difference():
    same = campaign("1100101")
    result = compare_campaigns(same, same)
    assert (result.only_a, result.only_b, result.p_value, result.delta) == (0, 0, 1.0, 0.0)
