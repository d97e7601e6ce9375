"""The error-budget arithmetic and the alerting policy, as pure functions (no database): what the evaluation
applies and the tests check on hand-made numbers.

The policy is the Google SRE workbook's multiwindow, multi-burn-rate alerts (chapter 5, "Alerting on SLOs"):
a pair fires when the burn rate over BOTH its long and its short window is at or above its rate — the long
window says enough budget is being spent, the short one that it is still being spent now (so the alert resets
within minutes of a fix). Rates are burn rates, independent of the SLO's window: 14.4× spends 2 % of a 30-day
budget in an hour (2.1 % of a 28-day one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Pair:
    key: str
    label: str
    severity: str  # "page" (inbox + e-mail) or "ticket" (inbox)
    rate: float
    long: str  # window names, keys of WINDOWS
    short: str


WINDOWS: dict[str, timedelta] = {
    "5m": timedelta(minutes=5), "30m": timedelta(minutes=30), "1h": timedelta(hours=1),
    "6h": timedelta(hours=6), "3d": timedelta(days=3),
}
PAIRS: tuple[Pair, ...] = (
    Pair("fast", "Fast burn", "page", 14.4, "1h", "5m"),
    Pair("slow", "Slow burn", "page", 6.0, "6h", "30m"),
    Pair("ticket", "Steady burn", "ticket", 1.0, "3d", "6h"),
)
PAIRS_BY_KEY = {pair.key: pair for pair in PAIRS}


def bad_ratio(bad: int, valid: int) -> float:
    return bad / valid if valid else 0.0


def burn_rate(bad: int, valid: int, error_budget: float) -> float:
    """How fast the budget is spent: the bad ratio over the allowed one. 1 spends exactly the budget over the
    SLO's window; no valid events burn nothing."""
    return bad_ratio(bad, valid) / error_budget


def budget_remaining(bad: int, valid: int, error_budget: float) -> float | None:
    """The share of the window's error budget not yet spent (1 untouched, 0 spent, below 0 overspent). The
    budget is `error_budget` × the valid events of the window so far; None without valid events."""
    if not valid:
        return None
    return 1 - bad / (error_budget * valid)


def at_least(burn: float, rate: float) -> bool:
    """burn ≥ rate, forgiving the last bit of float division (72 bad of 1,000 at 99.5 % is 14.4×, not 14.3999…)."""
    return burn >= rate * (1 - 1e-9)


def fires(pair: Pair, burns: dict[str, float], valid: dict[str, int], *, min_events: int) -> bool:
    """Both windows at or above the pair's rate, and enough valid events in the long one to mean something."""
    return (valid.get(pair.long, 0) >= min_events and at_least(burns.get(pair.long, 0.0), pair.rate)
            and at_least(burns.get(pair.short, 0.0), pair.rate))
