"""The SLI counts per use case (apps/gateway/sli.py): what counts as a valid and a bad call, written by the
recorder in the ledger's transaction, and windows read from whole hours plus the minutes at their ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import openai
import pytest
from openai import OpenAI

from apps.gateway import sli
from apps.gateway.models import SliHour, SliMinute
from apps.gateway.sli import LATENCY_THRESHOLDS_MS, SliCounts, classify, sli_add_counts, sli_window
from apps.reviews.models import UseCase
from tests.support.standin import standin_model, standin_provider

QUESTION = [{"role": "user", "content": "Question: how long do refunds take?\n\n[1] Refunds take 14 days."}]
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("row", "expected"), [
    ({"status": "ok", "latency_ms": 7000}, (1, 0, 1, 7000)),
    ({"status": "ok", "latency_ms": 9000, "ttft_ms": 400}, (1, 0, 1, 400)),  # a stream: time to first token
    ({"status": "error", "error_type": "ProviderUnavailable"}, (1, 1, 0, None)),  # 5xx, timeouts
    ({"status": "error", "error_type": "RateLimited"}, (1, 1, 0, None)),  # the upstream's own 429
    ({"status": "error", "error_type": "StreamInterrupted"}, (1, 1, 0, None)),
    ({"status": "refused", "error_type": "budget_unavailable"}, (1, 1, 0, None)),  # failed closed: ours
    ({"status": "error", "error_type": "BadRequest"}, (0, 0, 0, None)),  # the caller's input
    ({"status": "error", "error_type": "ContextLengthExceeded"}, (0, 0, 0, None)),
    ({"status": "refused", "error_type": "insufficient_quota"}, (0, 0, 0, None)),  # the owner's budget
    ({"status": "refused", "error_type": "key_limit"}, (0, 0, 0, None)),
    ({"status": "refused", "error_type": "incident"}, (0, 0, 0, None)),  # switched off on purpose
    ({"status": "refused", "error_type": "content_policy_violation"}, (0, 0, 0, None)),
])
def test_what_counts_as_valid_and_bad(row, expected):
    assert classify(row) == expected


def _counts(requests, bad=0):
    return SliCounts(requests=requests, bad=bad, answered=requests - bad)


@pytest.mark.django_db
def test_a_window_sums_whole_hours_and_the_minutes_at_its_ends_once():
    sli_add_counts({(7, NOW - timedelta(minutes=115)): _counts(1000, 1),  # 10:05: before the window
                    (7, NOW - timedelta(minutes=90)): _counts(100, 2),  # 10:30: the partial hour at the start
                    (7, NOW - timedelta(minutes=30)): _counts(10, 3),  # 11:30: a whole hour
                    (8, NOW - timedelta(minutes=30)): _counts(5, 5)})

    window = sli_window([7, 8, 9], start=NOW - timedelta(minutes=105), end=NOW)

    assert (window[7].requests, window[7].bad) == (110, 5)
    assert (window[8].requests, window[8].bad) == (5, 5)
    assert 9 not in window
    short = sli_window([7], start=NOW - timedelta(minutes=45), end=NOW - timedelta(minutes=15))  # minutes only
    assert short[7].requests == 10


@pytest.mark.django_db
def test_counts_of_the_same_minute_add_up_in_both_tables():
    slow = [0] * len(LATENCY_THRESHOLDS_MS)
    slow[0] = 2
    for _ in range(2):
        sli_add_counts({(7, NOW): SliCounts(requests=3, bad=1, answered=2, slow=list(slow))})
    assert SliMinute.objects.values_list("requests", "bad", "answered").get() == (6, 2, 4)
    hour = SliHour.objects.get()
    assert (hour.requests, hour.slow[0], hour.slow[1]) == (6, 4, 0)


@pytest.mark.django_db
def test_calls_of_a_key_bound_to_no_use_case_count_under_the_keys_own_series():
    rows = [{"occurred_at": NOW, "status": "ok", "latency_ms": 100, "gateway_key_id": 5, "use_case_id": None},
            {"occurred_at": NOW, "status": "error", "error_type": "ProviderUnavailable", "gateway_key_id": 5,
             "use_case_id": None},
            {"occurred_at": NOW, "status": "ok", "latency_ms": 100, "gateway_key_id": None, "use_case_id": None}]
    sli.sli_add(rows)  # the last is no gateway call: not counted
    assert SliMinute.objects.values_list("use_case_id", "requests", "bad").get() == (sli.key_series(5), 2, 1)
    assert sli.key_of_series(sli.key_series(5)) == 5 and sli.key_of_series(7) is None
    assert sli_window([5], start=NOW - timedelta(hours=1), end=NOW + timedelta(minutes=1)) == {}  # SLOs: use cases


def test_the_sli_prune_keeps_what_the_windows_need(db, settings):
    from apps.gateway.services import gateway_sli_prune

    settings.GATEWAY_SLI_MINUTE_RETENTION_HOURS, settings.GATEWAY_SLI_HOUR_RETENTION_DAYS = 80, 95
    sli_add_counts({(7, NOW - timedelta(hours=81)): _counts(1), (7, NOW - timedelta(hours=79)): _counts(1),
                    (7, NOW - timedelta(days=96)): _counts(1)})

    assert gateway_sli_prune(now=NOW) == 3  # two minutes and one hour
    assert SliMinute.objects.count() == 1 and SliHour.objects.count() == 2


def test_gateway_calls_of_a_use_case_are_counted_by_the_recorder(gateway_url, local_catalog, gateway_key, drain,
                                                                  llm_standin, team):
    standin_model(standin_provider(llm_standin), "fail-500", remote_name="fail-500")
    use_case = UseCase.objects.create(team=team, title="Refund helper", purpose="Answers refund questions",
                                      state="active")
    _key, secret = gateway_key(use_case_id=use_case.pk, allowed_aliases=["chat", "fail-500"])
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    sdk.chat.completions.create(model="chat", messages=QUESTION)
    list(sdk.chat.completions.create(model="chat", messages=QUESTION, stream=True))
    with pytest.raises(openai.InternalServerError):  # 502: the upstream failed
        sdk.chat.completions.create(model="fail-500", messages=QUESTION)
    with pytest.raises(openai.PermissionDeniedError):  # 403: not a valid event
        sdk.chat.completions.create(model="embeddings", messages=QUESTION)
    unbound, unbound_secret = gateway_key(name="batch-job", allowed_aliases=["fail-500"])  # no use case
    with pytest.raises(openai.InternalServerError):
        OpenAI(base_url=gateway_url, api_key=unbound_secret, max_retries=0).chat.completions.create(
            model="fail-500", messages=QUESTION)

    drain()

    counts = sli.sli_window([use_case.pk], start=datetime.now(UTC) - timedelta(hours=1),
                           end=datetime.now(UTC) + timedelta(minutes=1))[use_case.pk]
    assert (counts.requests, counts.bad, counts.answered) == (3, 1, 2)
    # the key bound to no use case: its own series (ADR 0103), which no use case's window includes
    assert list(SliMinute.objects.filter(use_case_id=sli.key_series(unbound.pk))
                .values_list("requests", "bad")) == [(1, 1)]


@pytest.mark.django_db
def test_settled_hours_are_summed_once_and_a_late_write_into_one_is_seen(django_assert_num_queries):
    now = datetime.now(UTC)
    sli_add_counts({(7, sli.floor_hour(now) - timedelta(hours=5)): _counts(100, 1)})
    assert sli_window([7], start=now - timedelta(days=1), end=now)[7].requests == 100
    with django_assert_num_queries(1):  # the settled hours come from the cache; only the last hour is read
        assert sli_window([7], start=now - timedelta(days=1), end=now)[7].requests == 100
    sli_add_counts({(7, sli.floor_hour(now) - timedelta(hours=5)): _counts(50, 50)})  # late: renews the stamp
    window = sli_window([7], start=now - timedelta(days=1), end=now)
    assert (window[7].requests, window[7].bad) == (150, 51)
