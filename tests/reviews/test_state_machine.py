"""The whole transition table against every role: who may trigger each transition from each of its source
states, and that nobody may trigger it from any other state."""

import pytest

from apps.reviews import workflow
from apps.reviews.models import State, UseCase

EXPECTED = {
    "engineer": {"submit", "withdraw"},
    "owner": {"submit", "withdraw", "retire"},
    "viewer": set(),
    "outsider": set(),
    "nobody": set(),
    "council_member": {"start_review", "request_info", "set_conditions", "suspend", "reinstate"},
    "admin_user": {"submit", "withdraw", "retire", "suspend", "reinstate"},
    "system": {"triage", "start_review", "auto_reject", "approve", "approve_with_conditions", "reject",
               "set_conditions", "activate", "mark_review_due", "expire", "suspend"},
}


@pytest.fixture
def people(request, engineer, owner, viewer, outsider, nobody, council_member, admin_user):
    return {"engineer": engineer, "owner": owner, "viewer": viewer, "outsider": outsider, "nobody": nobody,
            "council_member": council_member, "admin_user": admin_user, "system": None}


def test_every_transition_is_covered_by_the_expectations():
    assert set().union(*EXPECTED.values()) == set(workflow.TRANSITIONS)


@pytest.mark.parametrize("name", sorted(workflow.TRANSITIONS))
def test_who_may_trigger_each_transition_from_each_state(make_use_case, people, name):
    use_case = make_use_case()
    t = workflow.TRANSITIONS[name]
    for state in State.values:
        UseCase.objects.filter(pk=use_case.pk).update(state=state)
        use_case.refresh_from_db()
        for who, actor in people.items():
            expected = state in t.sources and name in EXPECTED[who]
            assert workflow.may(actor, name, use_case) is expected, (name, state, who)


def test_the_page_offers_only_allowed_human_actions(make_use_case, people):
    use_case = make_use_case()
    UseCase.objects.filter(pk=use_case.pk).update(state=State.ACTIVE)
    use_case.refresh_from_db()
    assert {t.name for t in workflow.available(people["council_member"], use_case)} == {"suspend"}
    assert {t.name for t in workflow.available(people["owner"], use_case)} == {"retire"}
    assert workflow.available(people["viewer"], use_case) == []
