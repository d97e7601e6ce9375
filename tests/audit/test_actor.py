"""audit_record(actor=...): one keyword for whoever acts; the helper splits it into the user and the token."""

import pytest
from django.contrib.auth.models import AnonymousUser

from apps.audit.services import audit_record, split_actor
from apps.core.request_context import acting_as


@pytest.mark.django_db
class TestSplitActor:
    def test_a_user_acts_as_themself_without_a_token(self, engineer):
        assert split_actor(engineer) == (engineer, None)

    def test_a_token_acts_for_its_owner(self, team, engineer, token_for):
        token, _ = token_for(engineer, team)
        assert split_actor(token) == (engineer, token)

    def test_no_one_is_no_user_and_no_token(self):
        assert split_actor(None) == (None, None)

    def test_an_anonymous_visitor_stays_anonymous(self):
        anonymous = AnonymousUser()
        assert split_actor(anonymous) == (anonymous, None)


def _who(event) -> tuple:
    return event.actor_user_id, event.actor_token_id, event.actor_label


@pytest.mark.django_db
class TestAuditRecordActor:
    def test_a_user_is_stored_as_with_the_user_keyword(self, engineer):
        assert _who(audit_record(action="test.actor", actor=engineer)) == _who(
            audit_record(action="test.actor", user=engineer)) == (engineer.pk, None, "evan-engineer")

    def test_a_token_is_stored_with_its_owner_as_with_the_two_keywords(self, team, engineer, token_for):
        token, _ = token_for(engineer, team)
        assert _who(audit_record(action="test.actor", actor=token)) == _who(
            audit_record(action="test.actor", user=engineer, token=token)) == (
            engineer.pk, token.pk, f"token gp_{token.key_id} (evan-engineer)")

    def test_the_tokens_owner_acting_in_person_is_not_the_token(self, team, engineer, token_for):
        token_for(engineer, team)
        assert _who(audit_record(action="test.actor", actor=engineer)) == (engineer.pk, None, "evan-engineer")

    def test_no_actor_falls_back_to_the_request_context_then_the_system(self, owner):
        with acting_as(owner):
            assert _who(audit_record(action="test.actor", actor=None)) == (owner.pk, None, "olivia-owner")
        assert _who(audit_record(action="test.actor", actor=None)) == (None, None, "system")

    def test_an_actor_and_a_user_together_are_a_programming_error(self, engineer, owner):
        with pytest.raises(TypeError, match="actor= or user="):
            audit_record(action="test.actor", actor=engineer, user=owner)
