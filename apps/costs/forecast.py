"""Month-end forecasts from daily spend: weekday-aware run rate plus an uncertainty band.

For each remaining day: the mean spend of that weekday over the last four weeks (or the overall daily mean
when a weekday has no history). Uncertainty: the spread of the days around their weekday means (σ), which
for n independent remaining days gives ±1.28·σ·√n — an 80% interval. Simple, explainable, and honest about
noise; it does not model growth inside the month.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

Z80 = 1.2816


@dataclass(frozen=True)
class Forecast:
    to_date: float  # spend so far in the period
    projected: float  # to_date + expected spend of the remaining days
    low: float
    high: float
    remaining_days: int


def forecast_period(daily: dict[date, float], *, today: date, period_start: date, period_end: date,
                    history_days: int = 28) -> Forecast:
    """`daily`: {day: spend} covering at least the history window and the period so far (missing days = 0).

    Today counts as remaining (it is not over); its spend so far is part of to_date.
    """
    to_date = sum(v for d, v in daily.items() if period_start <= d <= today)
    history = [(today - timedelta(days=i)) for i in range(1, history_days + 1)]
    values = {d: daily.get(d, 0.0) for d in history}
    by_weekday: dict[int, list[float]] = {}
    for d, v in values.items():
        by_weekday.setdefault(d.weekday(), []).append(v)
    overall = sum(values.values()) / len(values) if values else 0.0
    means = {wd: sum(vs) / len(vs) for wd, vs in by_weekday.items()}
    residuals = [v - means.get(d.weekday(), overall) for d, v in values.items()]
    sigma = math.sqrt(sum(r * r for r in residuals) / max(1, len(residuals) - 1)) if residuals else 0.0
    remaining = [today + timedelta(days=i) for i in range((period_end - today).days)]
    expected = 0.0
    for d in remaining:
        mean = means.get(d.weekday(), overall)
        if d == today:  # part of today is already in to_date
            mean = max(0.0, mean - daily.get(today, 0.0))
        expected += mean
    spread = Z80 * sigma * math.sqrt(len(remaining)) if remaining else 0.0
    projected = to_date + expected
    return Forecast(to_date=to_date, projected=projected, low=max(to_date, projected - spread),
                    high=projected + spread, remaining_days=len(remaining))


def as_decimal(value: float) -> Decimal:
    return Decimal(str(round(value, 6)))
