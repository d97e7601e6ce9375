"""Bad input on every form of the review pages: a clear message where the person looks, nothing changed, no 500.

Each page's POST is parsed by a Django form (`apps/reviews/forms.py`); a service's refusal lands next to the
field it names. "Nothing changed" is read from the audit trail: every state change writes one event.
"""

from datetime import date

import pytest

from apps.audit.models import AuditEvent
from apps.reviews import services
from apps.reviews.models import Comment, State, TierChangeStatus, UseCase
from tests.reviews.conftest import ELEVATED_INTERNAL


@pytest.fixture
def use_case(make_use_case):
    return make_use_case(ELEVATED_INTERNAL, submit=True)


@pytest.fixture
def unchanged():
    """unchanged() → True when no audit event was written since the fixture was taken."""
    before = AuditEvent.objects.count()
    return lambda: AuditEvent.objects.count() == before


def _field_error(response, message: str) -> bool:
    body = response.content.decode()
    return response.status_code == 422 and f'<p class="field-error" role="alert">{message}</p>' in body


def _flash(client, use_case, response) -> str:
    assert response.status_code == 302
    return client.get(use_case.get_absolute_url()).content.decode()


def test_intake_with_a_team_that_is_not_mine_names_the_field_and_saves_nothing(client_for, engineer, other_team):
    response = client_for(engineer).post("/use-cases/new/", {"title": "T", "purpose": "P", "team": other_team.pk})
    assert _field_error(response, "Choose one of your teams.")
    assert 'value="T"' in response.content.decode()  # what was typed stays
    assert not UseCase.objects.exists()


def test_editing_to_an_empty_title_keeps_the_old_one(client_for, engineer, make_use_case):
    draft = make_use_case()
    events = AuditEvent.objects.count()
    response = client_for(engineer).post(f"/use-cases/{draft.pk}/edit/", {"title": "", "purpose": "Still here",
                                                                          "lifecycle_stage": "idea"})
    assert _field_error(response, "Give the use case a title.")
    draft.refresh_from_db()
    assert draft.title == "Ticket triage assistant" and AuditEvent.objects.count() == events


def test_the_follow_up_questions_fragment_survives_garbage_answers(client_for, engineer):
    response = client_for(engineer).post("/use-cases/questions/", {"a_exposure": ["x" * 300, "🦖"],
                                                                       "a_decision_influence": "perhaps"})
    assert response.status_code == 200 and 'data-question="exposure"' in response.content.decode()


def test_an_unknown_action_is_refused_next_to_the_actions(client_for, use_case, council_member, unchanged):
    response = client_for(council_member).post(f"/use-cases/{use_case.pk}/transition/", {"name": "teleport"})
    assert _field_error(response, "Choose one of the actions on the page.")
    use_case.refresh_from_db()
    assert use_case.state == State.IN_REVIEW and unchanged()


def test_asking_for_information_without_a_note_says_so_next_to_the_note(client_for, use_case, council_member,
                                                                          unchanged):
    response = client_for(council_member).post(f"/use-cases/{use_case.pk}/transition/",
                                               {"name": "request_info", "note": "  "})
    assert _field_error(response, "Say why (ask for more information needs a note).")
    use_case.refresh_from_db()
    assert use_case.state == State.IN_REVIEW and unchanged()


def test_an_unknown_tier_and_an_unjustified_lowering_are_refused_next_to_their_fields(client_for, use_case, engineer,
                                                                                        unchanged):
    c = client_for(engineer)
    response = c.post(f"/use-cases/{use_case.pk}/tier/", {"to_tier": "galactic"})
    assert _field_error(response, "Choose one of: low, elevated, high, prohibited.")
    response = c.post(f"/use-cases/{use_case.pk}/tier/", {"to_tier": "low", "justification": ""})
    assert _field_error(response, "Lowering a tier needs a written justification.")
    use_case.refresh_from_db()
    assert use_case.tier == "elevated" and not use_case.tier_changes.exists() and unchanged()


def test_a_sign_off_without_a_decision_decides_nothing(client_for, use_case, engineer, legal):
    change = services.tier_change(use_case=use_case, actor=engineer, to_tier="low", justification="Public data only")
    c = client_for(legal)
    for data in ({}, {"approve": "maybe"}):
        response = c.post(f"/use-cases/{use_case.pk}/tier/{change.pk}/decide/", data)
        assert "Sign the lower tier off or refuse it." in _flash(c, use_case, response)
    change.refresh_from_db()
    assert change.status == TierChangeStatus.PENDING


def test_evidence_without_a_file_or_with_a_script_link_is_refused_next_to_the_link(client_for, use_case, security,
                                                                                     engineer):
    condition = services.condition_add(use_case=use_case, actor=security, title="Runbook", owner=engineer,
                                       due_date=date.today())
    c = client_for(engineer)
    url = f"/use-cases/{use_case.pk}/conditions/{condition.pk}/evidence/"
    assert _field_error(c.post(url, {"note": "soon"}), "Upload a file or link to the evidence.")
    response = c.post(url, {"url": "javascript:alert(1)"})
    assert _field_error(response, "Link to a portal page (/…) or an http(s) address.")
    condition.refresh_from_db()
    assert condition.status == "pending" and not condition.evidence_url


def test_an_empty_comment_is_refused_next_to_the_box(client_for, use_case, engineer, unchanged):
    response = client_for(engineer).post(f"/use-cases/{use_case.pk}/comments/", {"body": "   "})
    assert _field_error(response, "Write something first.")
    assert not Comment.objects.exists() and unchanged()


@pytest.mark.parametrize("path, data, message", [
    ("prompts", {"prompt": "abc"}, "Choose a prompt to link."),
    ("prompts", {"prompt": "987654"}, "Choose a prompt to link."),
    ("prompts", {}, "Choose a prompt to link."),
    ("prompts", {"unlink": "abc"}, "Choose a link to remove."),
    ("collections", {"collection": "-3"}, "Choose a collection to link."),
    ("collections", {"collection": "987654"}, "Choose a collection to link."),
])
def test_a_bad_link_choice_is_refused_next_to_the_select(client_for, use_case, engineer, unchanged, path, data,
                                                         message):
    response = client_for(engineer).post(f"/use-cases/{use_case.pk}/{path}/", data)
    assert _field_error(response, message)
    assert not use_case.prompt_links.exists() and not use_case.collection_links.exists() and unchanged()
