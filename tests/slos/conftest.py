from datetime import UTC, datetime, timedelta

import pytest

from apps.gateway.sli import LATENCY_THRESHOLDS_MS, SliCounts, sli_add_counts
from apps.reviews.models import UseCase
from apps.slos.models import Kind, Slo

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # evaluations in these tests run "now", on a whole hour


@pytest.fixture
def use_case(team, owner):
    return UseCase.objects.create(team=team, title="Refund helper", purpose="Answers refund questions",
                                  business_owner=owner)


@pytest.fixture
def availability(use_case, owner):
    return Slo.objects.create(use_case=use_case, team=use_case.team, kind=Kind.AVAILABILITY, target_percent="99.5",
                              window_days=28, created_by=owner, updated_by=owner)


@pytest.fixture
def latency(use_case, owner):
    return Slo.objects.create(use_case=use_case, team=use_case.team, kind=Kind.LATENCY, target_percent="95",
                              threshold_ms=6000, window_days=28, created_by=owner, updated_by=owner)


def put(use_case, ago: timedelta, *, requests: int, bad: int = 0, answered: int | None = None,
        slow: dict[int, int] | None = None) -> None:
    """Counts of one minute, `ago` before NOW, as the gateway's recorder would have written them."""
    counts = SliCounts(requests=requests, bad=bad, answered=requests - bad if answered is None else answered)
    for threshold, n in (slow or {}).items():  # only the thresholds a test reads
        counts.slow[LATENCY_THRESHOLDS_MS.index(threshold)] = n
    minute = (NOW - ago).replace(second=0, microsecond=0)
    sli_add_counts({(use_case.pk, minute): counts})
