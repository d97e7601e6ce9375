"""Services: validation with messages keyed by field, one audit event per change, nothing on refusal."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.accounts.models import ApiToken, Membership, Role, Team
from apps.accounts.services import (
    api_token_create,
    api_token_revoke,
    api_token_touch,
    council_seat_set,
    hash_token,
    membership_remove,
    membership_set,
    team_create,
    user_password_change,
)
from apps.audit.models import AuditEvent
from tests.factories import UserFactory


@pytest.fixture
def events():
    """events() -> the audit events written since the fixture was created, oldest first."""
    start = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    return lambda: list(AuditEvent.objects.filter(id__gt=start).order_by("id"))


def errors_of(excinfo) -> dict:
    return excinfo.value.message_dict


@pytest.mark.django_db
class TestTeamCreate:
    def test_creates_the_team_and_its_owner_with_one_event(self, nobody, admin_user, events):
        team = team_create(name="Fraud Detection", owner=nobody, actor=admin_user)
        assert team.slug == "fraud-detection"
        assert Membership.objects.get(team=team).role == Role.OWNER
        [event] = events()
        assert (event.action, event.actor_label, event.team_id) == ("team.create", "ada-admin", team.pk)
        assert event.changes == {"name": "Fraud Detection", "slug": "fraud-detection", "owner": "nina-nobody"}

    @pytest.mark.parametrize(("kwargs", "field", "message"), [
        ({"name": ""}, "name", "Give the team a name"),
        ({"name": "x" * 121}, "name", "under 120"),
        ({"name": "!!!"}, "slug", "no letters or digits"),
        ({"name": "Ok", "slug": "has space"}, "slug", "letters, digits, hyphens"),
        ({"name": "Ok", "slug": "support-ai"}, "slug", "already exists"),
        ({"name": "New", "slug": "new"}, "slug", "reserved"),
    ])
    def test_refuses_bad_input_and_writes_nothing(self, team, kwargs, field, message, events):
        before = Team.objects.count()
        with pytest.raises(ValidationError) as excinfo:
            team_create(**kwargs)
        assert message in " ".join(errors_of(excinfo)[field])
        assert Team.objects.count() == before and events() == []


@pytest.mark.django_db
class TestMembership:
    def test_adding_a_member_records_one_add_event(self, team, owner, nobody, events):
        membership_set(team=team, user=nobody, role=Role.VIEWER, actor=owner)
        [event] = events()
        assert (event.action, event.actor_label, event.team_id) == ("team.member.add", "olivia-owner", team.pk)
        assert event.changes == {"user": "nina-nobody", "user_id": nobody.pk, "role": [None, "viewer"]}

    def test_changing_a_role_records_before_and_after(self, team, owner, viewer, events):
        membership_set(team=team, user=viewer, role=Role.ENGINEER, actor=owner)
        [event] = events()
        assert event.action == "team.member.change" and event.changes["role"] == ["viewer", "engineer"]

    def test_setting_the_same_role_changes_nothing_and_records_nothing(self, team, viewer, events):
        membership_set(team=team, user=viewer, role=Role.VIEWER)
        assert events() == []

    def test_an_unknown_role_is_refused(self, team, nobody, events):
        with pytest.raises(ValidationError) as excinfo:
            membership_set(team=team, user=nobody, role="boss")
        assert "Unknown role 'boss'" in errors_of(excinfo)["role"][0]
        assert not Membership.objects.filter(user=nobody).exists() and events() == []

    def test_a_deactivated_user_cannot_join(self, team, events):
        ghost = UserFactory(username="ghost", is_active=False)
        with pytest.raises(ValidationError, match="deactivated"):
            membership_set(team=team, user=ghost, role=Role.VIEWER)
        assert events() == []

    def test_the_last_owner_cannot_step_down(self, team, owner, events):
        with pytest.raises(ValidationError) as excinfo:
            membership_set(team=team, user=owner, role=Role.ENGINEER)
        assert "last owner" in errors_of(excinfo)["role"][0]
        assert Membership.objects.get(team=team, user=owner).role == Role.OWNER and events() == []

    def test_an_owner_may_step_down_when_another_remains(self, team, owner, engineer):
        membership_set(team=team, user=engineer, role=Role.OWNER)
        membership_set(team=team, user=owner, role=Role.VIEWER)
        assert Membership.objects.get(team=team, user=owner).role == Role.VIEWER

    def test_the_last_owner_cannot_be_removed(self, team, owner, events):
        with pytest.raises(ValidationError) as excinfo:
            membership_remove(team=team, user=owner)
        assert "last owner" in errors_of(excinfo)["user"][0]
        assert Membership.objects.filter(team=team, user=owner).exists() and events() == []

    def test_removing_a_non_member_says_so(self, team, nobody, events):
        with pytest.raises(ValidationError, match="not a member"):
            membership_remove(team=team, user=nobody)
        assert events() == []

    def test_removal_revokes_the_members_tokens_in_the_same_event(self, team, owner, engineer, token_for, events):
        token, _ = token_for(engineer, team, "write")
        start = len(events())
        membership_remove(team=team, user=engineer, actor=owner)
        token.refresh_from_db()
        assert token.revoked_at is not None
        [event] = events()[start:]
        assert event.action == "team.member.remove"
        assert event.changes["revoked_tokens"] == [f"gp_{token.key_id}"]
        assert event.changes["role"] == ["engineer", None]


@pytest.mark.django_db
class TestCouncilSeat:
    def test_seating_and_unseating_record_one_event_each(self, nobody, admin_user, events):
        council_seat_set(user=nobody, seat="privacy", actor=admin_user)
        council_seat_set(user=nobody, seat="privacy", actor=admin_user)  # no change
        council_seat_set(user=nobody, seat="privacy", seated=False, actor=admin_user)
        assert [(e.action, e.changes["seated"]) for e in events()] == [
            ("council.seat.set", [False, True]), ("council.seat.set", [True, False])]
        assert events()[0].object_type == "auth.user" and events()[0].object_repr == "nina-nobody"

    def test_an_unknown_seat_is_refused(self, nobody, events):
        with pytest.raises(ValidationError, match="Unknown council seat 'finance'"):
            council_seat_set(user=nobody, seat="finance")
        assert events() == []


@pytest.mark.django_db
def test_password_change_is_recorded_without_the_password(nobody, events):
    user_password_change(user=nobody, new_password="a-brand-new-passphrase", actor=nobody)
    nobody.refresh_from_db()
    assert nobody.check_password("a-brand-new-passphrase")
    [event] = events()
    assert (event.action, event.actor_label, event.changes) == ("user.password.change", "nina-nobody", {})
    assert "passphrase" not in str(event.changes) + event.object_repr


@pytest.mark.django_db
class TestApiTokens:
    def test_the_secret_is_returned_once_and_only_its_sha256_is_stored(self, team, engineer, events):
        issued = api_token_create(team=team, user=engineer, name="ci", scope="write", days=30, actor=engineer)
        token = ApiToken.objects.get(pk=issued.token.pk)
        assert issued.secret.startswith(f"gp_{token.key_id}_")
        assert token.key_hash == hash_token(issued.secret) and len(token.key_hash) == 64
        assert issued.secret not in str(ApiToken.objects.filter(pk=token.pk).values().get())
        [event] = events()
        assert event.action == "api_token.create" and event.team_id == team.pk
        assert issued.secret not in str(event.changes) and token.key_hash not in str(event.changes)
        assert event.changes["scope"] == "write" and event.changes["key"] == f"gp_{token.key_id}"

    def test_it_expires_after_the_given_days(self, team, engineer):
        before = timezone.now()
        token = api_token_create(team=team, user=engineer, name="ci", days=7).token
        assert before + dt.timedelta(days=7) <= token.expires_at <= timezone.now() + dt.timedelta(days=7)

    @pytest.mark.parametrize(("kwargs", "field", "message"), [
        ({"name": "  "}, "name", "Give the token a name"),
        ({"name": "x" * 101}, "name", "under 100"),
        ({"scope": "admin"}, "scope", "Unknown scope 'admin'"),
        ({"days": 0}, "days", "between 1 and 365"),
        ({"days": 366}, "days", "between 1 and 365"),
        ({"days": None}, "days", "Every token expires"),
    ])
    def test_bad_input_is_refused_by_field(self, team, engineer, kwargs, field, message, events):
        with pytest.raises(ValidationError) as excinfo:
            api_token_create(**{"team": team, "user": engineer, "name": "ci", **kwargs})
        assert message in " ".join(errors_of(excinfo)[field])
        assert not ApiToken.objects.exists() and events() == []

    def test_only_members_get_tokens(self, team, outsider):
        with pytest.raises(ValidationError) as excinfo:
            api_token_create(team=team, user=outsider, name="ci")
        assert "not a member of Support AI" in errors_of(excinfo)["team"][0]

    def test_a_viewer_gets_read_tokens_only(self, team, viewer):
        with pytest.raises(ValidationError) as excinfo:
            api_token_create(team=team, user=viewer, name="ci", scope="write")
        assert errors_of(excinfo)["scope"] == ["As viewer of Support AI, pat-pm can create read tokens only."]
        assert api_token_create(team=team, user=viewer, name="ci", scope="read").token.scope == "read"

    def test_revoking_records_one_event_and_revoking_again_records_none(self, team, engineer, owner, token_for,
                                                                       events):
        token, _ = token_for(engineer, team)
        start = len(events())
        api_token_revoke(token=token, actor=owner)
        first = ApiToken.objects.get(pk=token.pk).revoked_at
        api_token_revoke(token=token, actor=owner)
        assert ApiToken.objects.get(pk=token.pk).revoked_at == first
        [event] = events()[start:]
        assert (event.action, event.actor_label, event.team_id) == ("api_token.revoke", "olivia-owner", team.pk)

    def test_last_use_is_written_at_most_once_a_minute(self, team, engineer, token_for,
                                                       django_assert_num_queries):
        token, _ = token_for(engineer, team)
        with django_assert_num_queries(1):
            api_token_touch(token)
        first = ApiToken.objects.get(pk=token.pk).last_used_at
        assert first is not None
        with django_assert_num_queries(0):  # the same object knows it was just written
            api_token_touch(token)
        stale_copy = ApiToken.objects.get(pk=token.pk)
        stale_copy.last_used_at = None  # another process with an old copy: the conditional UPDATE holds
        api_token_touch(stale_copy)
        assert ApiToken.objects.get(pk=token.pk).last_used_at == first
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - dt.timedelta(seconds=61))
        api_token_touch(ApiToken.objects.get(pk=token.pk))
        assert ApiToken.objects.get(pk=token.pk).last_used_at > first
