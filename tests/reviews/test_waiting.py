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
