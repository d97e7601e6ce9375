"""Fixtures for use-case reviews: council members per seat, intake answers, use cases in each state."""

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache

from apps.accounts.models import CouncilSeat
from apps.reviews import services
from tests.factories import UserFactory

# A complete, low-risk intake: internal users only, public data, a person checks every output.
LOW_ANSWERS = {
    "exposure": ["internal"], "geographies": ["us"], "models": "local-extractive", "third_party_model": False,
    "chats_with_people": False, "generates_media": False, "annex_iii_area": "none", "decision_influence": False,
    "profiling": False, "prohibited_practices": ["none"], "human_oversight": "every_output", "tool_actions": False,
    "untrusted_content": False, "external_publication": False, "prompt_data_classes": ["public"],
    "uses_rag": False, "regulated_advice": ["none"], "harm_scale": "individual", "harm_reversibility": "easy",
    "planned_evals": "baseline eval on 50 tickets",
}


def answers(**changes):
    return {**LOW_ANSWERS, **changes}


ELEVATED_INTERNAL = answers(prompt_data_classes=["internal", "pii"])  # E3 only; internal → security + privacy
ELEVATED_EXTERNAL = answers(exposure=["customers"], chats_with_people=True)  # E1; external → + legal
HIGH = answers(annex_iii_area="employment", profiling=True)  # H1
PROHIBITED = answers(prohibited_practices=["social_scoring"])


def _seat_user(username, *seats):
    user = UserFactory(username=username)
    for seat in seats:
        group, _ = Group.objects.get_or_create(name=CouncilSeat(seat).group_name)
        user.groups.add(group)
    return user


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    yield


@pytest.fixture
def security(council_member):
    return council_member


@pytest.fixture
def privacy(db):
    return _seat_user("priya-privacy", "privacy")


@pytest.fixture
def legal(db):
    return _seat_user("lee-legal", "legal")


@pytest.fixture
def legal2(db):
    return _seat_user("lou-legal", "legal")


@pytest.fixture
def product(db):
    return _seat_user("paula-product", "product")


@pytest.fixture
def seat_user():
    return _seat_user


def clear_controls(use_case):
    """Test data: every required control of a submitted use case already waived, so votes alone decide whether it
    goes active (tests of the control gate itself pass `controls_cleared=False`)."""
    from apps.reviews.models import ControlWaiver

    for key in use_case.required_controls or []:
        ControlWaiver.objects.get_or_create(use_case=use_case, control=key, defaults={"reason": "test data"})
    return use_case


@pytest.fixture
def make_use_case(team, engineer):
    def make(answers_=None, *, actor=None, title="Ticket triage assistant", submit=False, controls_cleared=True):
        use_case = services.use_case_create(team=team, actor=actor or engineer, title=title,
                                            purpose="Summarise support tickets for agents.",
                                            answers=LOW_ANSWERS if answers_ is None else answers_)
        if submit:
            use_case = services.use_case_submit(use_case=use_case, actor=actor or engineer)
            if controls_cleared:
                clear_controls(use_case)
        return use_case

    return make


@pytest.fixture
def approve():
    """approve(use_case, *voters): each voter approves with a rationale."""

    def run(use_case, *voters, decision="approve"):
        for voter in voters:
            services.vote_cast(use_case=use_case, user=voter, decision=decision, rationale="Looks fine.")
        use_case.refresh_from_db()
        return use_case

    return run
