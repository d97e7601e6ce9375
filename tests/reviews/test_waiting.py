"""A council seat's "waiting on you" count: in-review use cases that need their vote."""

from django.urls import reverse

from apps.notifications.waiting import waiting_count, waiting_for


def test_a_council_member_is_waited_on_for_a_vote_until_they_vote(make_use_case, council_member, engineer,
                                                                   client_for):
    use_case = make_use_case(submit=True)
    assert waiting_count(waiting_for(council_member)) == 1
    assert waiting_for(engineer) == []
    badge = client_for(council_member).get(reverse("notifications:waiting_count")).content.decode()
    assert "1 waiting on you" in badge

    from apps.reviews.services import vote_cast

    vote_cast(use_case=use_case, user=council_member, decision="approve", rationale="fine")
    assert waiting_for(council_member) == []


def test_legal_is_waited_on_for_a_pending_tier_change_and_an_owner_for_a_due_condition(make_use_case, legal,
                                                                                     council_member, engineer):
    from django.utils import timezone

    from apps.reviews.models import Condition, TierChange, TierChangeStatus

    use_case = make_use_case(submit=True)
    TierChange.objects.create(use_case=use_case, from_tier="elevated", to_tier="low", requested_by=engineer,
                              status=TierChangeStatus.PENDING, justification="internal users only")
    labels = {w.key: w.count for w in waiting_for(legal)}
    assert labels["review.tier_changes"] == 1
    assert "review.tier_changes" not in {w.key for w in waiting_for(council_member)}

    condition = Condition.objects.create(use_case=use_case, title="Red-team report", owner=engineer, kind="manual",
                                         due_date=timezone.now().date())
    assert waiting_for(engineer) == []  # not due yet: no notice went out
    Condition.objects.filter(pk=condition.pk).update(due_notice_sent_at=timezone.now())
    assert [(w.key, w.count) for w in waiting_for(engineer)] == [("review.conditions", 1)]
