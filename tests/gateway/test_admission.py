"""A key bound to a use case that is not active is refused with 423 and the reason, in the next second."""

from __future__ import annotations

from datetime import timedelta

import openai
import pytest
from django.utils import timezone
from openai import OpenAI

from apps.gateway import registry
from apps.reviews.models import State, UseCase

QUESTION = [{"role": "user", "content": "Question: how long do refunds take?\n\n[1] Refunds take 14 days."}]


@pytest.fixture
def use_case_guard(settings):
    """Reviews' guard, registered at start-up by apps/reviews/hooks.py; asked on every request here."""
    settings.GATEWAY_ADMISSION_TTL_SECONDS = 0  # ask every time: no waiting in tests
    assert "use_case" in registry.admission_guards()


def test_a_suspended_use_case_refuses_its_keys_with_423_and_the_reason(gateway_url, local_catalog, gateway_key,
                                                                      team, use_case_guard):
    use_case = UseCase.objects.create(team=team, title="Refund helper", state=State.ACTIVE,
                                      expires_at=timezone.now() + timedelta(days=30))
    _key, secret = gateway_key(use_case_id=use_case.pk)
    sdk = OpenAI(base_url=gateway_url, api_key=secret, max_retries=0)
    assert sdk.chat.completions.create(model="local-extractive", messages=QUESTION).choices

    UseCase.objects.filter(pk=use_case.pk).update(state=State.SUSPENDED)  # as the workflow moves states
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="local-extractive", messages=QUESTION)
    assert caught.value.status_code == 423
    assert "suspended" in caught.value.message and "Refund helper" in caught.value.message


def test_a_key_bound_to_a_use_case_in_review_or_missing_is_refused(gateway_url, local_catalog, gateway_key, team,
                                                                   use_case_guard):
    draft = UseCase.objects.create(team=team, title="Draft idea", state=State.IN_REVIEW)
    for use_case_id, words in ((draft.pk, "not active"), (draft.pk + 1000, "does not exist")):
        _key, secret = gateway_key(use_case_id=use_case_id)
        with pytest.raises(openai.APIStatusError, match=words) as caught:
            OpenAI(base_url=gateway_url, api_key=secret, max_retries=0).chat.completions.create(
                model="local-extractive", messages=QUESTION)
        assert caught.value.status_code == 423


def test_requests_that_find_an_answer_stale_together_wait_for_one_question(settings):
    """Under load, every request that found the answer stale used to ask again (each a query queued on the one
    database thread): now they share the one question in flight (ADR 0099)."""
    import asyncio
    import threading

    from apps.gateway.keys import KeyInfo

    settings.GATEWAY_ADMISSION_TTL_SECONDS = 60
    info = KeyInfo(id=7, prefix="pk-gw-00000007", team_id=1, feature="bot", use_case_id=None, allowed_aliases=(),
                   requests_per_minute=None, requests_per_day=None, tokens_per_minute=None, tokens_per_day=None,
                   dollars_per_day=None, expires_at=None, revoked_at=None, overlap_ends_at=None, cache_enabled=False,
                   store_bodies=False)
    asked, release = [], threading.Event()

    def ask(target):
        asked.append(target.key_id)
        release.wait(5)
        return ("incident", "switched off")

    async def burst():
        answers: dict = {}
        waiting = [asyncio.ensure_future(registry.cached_answer(answers, info, b"s1", ask, failure="x"))
                   for _ in range(20)]
        await asyncio.sleep(0.05)
        release.set()
        first = await asyncio.gather(*waiting)
        again = await registry.cached_answer(answers, info, b"s1", ask, failure="x")  # fresh: not asked
        moved = await registry.cached_answer(answers, info, b"s2", ask, failure="x")  # the stamp moved: asked
        return first, again, moved

    first, again, moved = asyncio.run(burst())
    assert set(first) == {("incident", "switched off")} and again == moved == ("incident", "switched off")
    assert asked == [7, 7]
