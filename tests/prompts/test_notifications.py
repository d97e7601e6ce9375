"""Promotion requests reach people: approvers hear that one waits for them, the requester hears what became
of it (inbox + e-mail through apps.notifications), and the header counts what waits on each person."""

import pytest
from django.urls import reverse

from apps.notifications.models import Notification
from apps.prompts.selectors import promotion_requests_waiting_on
from apps.prompts.services import (
    promotion_request_approve,
    promotion_request_cancel,
    promotion_request_open,
    promotion_request_reject,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def prompt(make_prompt):
    return make_prompt()


@pytest.fixture
def opened(prompt, engineer2, owner, viewer):
    """engineer wrote v1; engineer2 asks to put it in production: only the owner may approve."""
    return promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer2, reason="ship it")


def _inbox(user, kind_prefix="prompt."):
    return list(Notification.objects.filter(user=user, kind__startswith=kind_prefix))


def test_opening_a_request_tells_each_eligible_approver_once(opened, owner, engineer, engineer2, viewer):
    [note] = _inbox(owner)
    assert note.kind == "prompt.promotion.waiting"
    assert note.link == reverse("prompts:request", kwargs={"pk": opened.pk})
    assert "support/triage-summary production — → v1" in note.title and "ship it" in note.body
    assert _inbox(engineer) == [] and _inbox(engineer2) == [] and _inbox(viewer) == []  # author, requester, viewer

    from apps.prompts.notify import promotion_opened

    promotion_opened(opened)  # the same request again: the dedupe key holds
    assert len(_inbox(owner)) == 1


def test_the_requester_hears_of_an_approval_and_of_the_label_moving(opened, owner, engineer2):
    promotion_request_approve(request=opened, user=owner, comment="reads well")
    [note] = _inbox(engineer2)
    assert note.kind == "prompt.promotion.applied" and "production moved" in note.title
    assert "approved by olivia-owner" in note.body


def test_an_approval_that_still_waits_on_a_check_says_what_it_waits_on(opened, owner, engineer2, team):
    from apps.prompts.services import policy_set

    policy_set(team=team, approvals_required=2)
    promotion_request_approve(request=opened, user=owner, comment="")
    [note] = _inbox(engineer2)
    assert note.kind == "prompt.promotion.approved"
    assert "Still waiting on:" in note.body


def test_the_requester_hears_of_a_rejection_with_the_comment(opened, owner, engineer2):
    promotion_request_reject(request=opened, user=owner, comment="tone is off")
    [note] = _inbox(engineer2)
    assert note.kind == "prompt.promotion.rejected" and "tone is off" in note.body


def test_a_cancel_by_an_owner_is_told_to_the_requester_and_their_own_cancel_is_not(opened, prompt, owner, engineer2):
    promotion_request_cancel(request=opened, actor=owner, comment="superseded")
    assert [n.kind for n in _inbox(engineer2)] == ["prompt.promotion.cancelled"]

    again = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=engineer2)
    promotion_request_cancel(request=again, actor=engineer2)
    assert len(_inbox(engineer2)) == 1


def test_waiting_on_me_is_what_i_may_approve_and_have_not_decided(opened, owner, engineer, engineer2, viewer,
                                                                  outsider, admin_user, team):
    from apps.prompts.services import policy_set

    assert list(promotion_requests_waiting_on(user=owner)) == [opened]
    for person in (engineer, engineer2, viewer, outsider, admin_user):  # author, requester, viewer, other, admin
        assert not promotion_requests_waiting_on(user=person).exists()
    policy_set(team=team, approvals_required=2)
    promotion_request_approve(request=opened, user=owner)  # still open, but owner has decided
    assert not promotion_requests_waiting_on(user=owner).exists()


def test_the_header_count_and_the_list_show_what_waits_on_me(opened, owner, engineer2, client_for):
    client = client_for(owner)
    badge = client.get(reverse("notifications:waiting_count"), HTTP_HX_REQUEST="true").content.decode()
    assert "1 waiting on you" in badge and 'href="/inbox/#waiting"' in badge
    inbox = client.get(reverse("notifications:inbox")).content.decode()
    assert "Promotion requests to review" in inbox and "?waiting=me" in inbox
    listed = client.get(reverse("prompts:requests") + "?waiting=me").content.decode()
    assert f"#{opened.pk}" in listed

    nothing = client_for(engineer2).get(reverse("notifications:waiting_count")).content.decode()
    assert "waiting on you" not in nothing


def test_every_page_loads_the_count_after_rendering_so_it_adds_no_query(owner, client_for):
    page = client_for(owner).get("/").content.decode()
    assert f'hx-get="{reverse("notifications:waiting_count")}"' in page and 'hx-trigger="load"' in page
