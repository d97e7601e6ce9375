"""The error-budget arithmetic and the window pairs, on numbers worked out by hand (no database)."""

import pytest

from apps.slos import policy

FAST, SLOW, TICKET = (policy.PAIRS_BY_KEY[k] for k in ("fast", "slow", "ticket"))


def test_burn_rate_is_the_bad_ratio_over_the_allowed_one():
    assert policy.burn_rate(72, 1000, 0.005) == pytest.approx(14.4)
    assert policy.burn_rate(5, 1000, 0.005) == pytest.approx(1.0)
    assert policy.burn_rate(0, 0, 0.005) == 0.0


def test_budget_remaining_is_what_the_window_has_not_spent():
    assert policy.budget_remaining(20, 10_000, 0.005) == pytest.approx(0.6)  # 20 of 50 allowed
    assert policy.budget_remaining(50, 10_000, 0.005) == pytest.approx(0.0)
    assert policy.budget_remaining(75, 10_000, 0.005) == pytest.approx(-0.5)  # overspent by half
    assert policy.budget_remaining(0, 0, 0.005) is None


def _burns(long_name, long_burn, short_name, short_burn):
    return {long_name: long_burn, short_name: short_burn}


@pytest.mark.parametrize(("pair", "rate"), [(FAST, 14.4), (SLOW, 6.0), (TICKET, 1.0)])
def test_a_pair_fires_at_its_rate_and_not_below(pair, rate):
    valid = {pair.long: 1000}
    assert policy.fires(pair, _burns(pair.long, rate, pair.short, rate), valid, min_events=10)
    assert not policy.fires(pair, _burns(pair.long, rate * 0.999, pair.short, rate), valid, min_events=10)
    assert not policy.fires(pair, _burns(pair.long, rate, pair.short, rate * 0.999), valid, min_events=10)


def test_a_pair_needs_both_windows():
    valid = {"1h": 1000}
    assert not policy.fires(FAST, _burns("1h", 50.0, "5m", 0.0), valid, min_events=10)  # burned, now stopped
    assert not policy.fires(FAST, _burns("1h", 2.0, "5m", 50.0), valid, min_events=10)  # a blip
    assert policy.fires(FAST, _burns("1h", 50.0, "5m", 50.0), valid, min_events=10)


def test_a_pair_stays_quiet_on_too_few_events():
    assert not policy.fires(FAST, _burns("1h", 200.0, "5m", 200.0), {"1h": 9}, min_events=10)
    assert policy.fires(FAST, _burns("1h", 200.0, "5m", 200.0), {"1h": 10}, min_events=10)


def test_the_threshold_forgives_float_division():
    # 72 bad calls of 1,000 at 99.5 % is 14.4× exactly, though 0.072 / 0.005 is 14.399999999999999 in floats
    assert policy.at_least(0.072 / (1 - 99.5 / 100), 14.4)
    assert not policy.at_least(0.071 / (1 - 99.5 / 100), 14.4)
