"""The permission helper: can(), restrict() and teams_for() agree, and lists are filtered in SQL."""

import pytest
from django.contrib.auth.models import AnonymousUser, Group
from django.core.exceptions import PermissionDenied
from django.http import Http404
from guardian.shortcuts import assign_perm

from apps.accounts.models import ApiToken, Membership, Role, Team
from apps.accounts.permissions import (
    Action,
    can,
    council_seats,
    get_object_for,
    is_admin,
    require,
    restrict,
    scope_allowed_for_role,
    team_roles,
    teams_for,
    user_id_of,
)
from apps.accounts.services import membership_remove, membership_set
from tests.factories import UserFactory


@pytest.fixture
def tokens(team, other_team, engineer, outsider, token_for):
    """Two tokens in Support AI and one in Search (rows to filter)."""
    return {
        "mine": token_for(engineer, team, "read")[0],
        "mine_too": token_for(engineer, team, "write")[0],
        "theirs": token_for(outsider, other_team, "read")[0],
    }


def names(queryset):
    return sorted(t.name for t in queryset)


@pytest.mark.django_db
class TestRestrictFiltersInSql:
    def test_a_member_sees_their_team_rows_in_one_query(self, tokens, engineer, django_assert_num_queries):
        engineer = type(engineer).objects.get(pk=engineer.pk)  # a fresh user object: no cached roles
        queryset = restrict(ApiToken.objects.all(), engineer, Action.VIEW)
        with django_assert_num_queries(1):
            visible = names(queryset)
        assert visible == ["evan-engineer-read", "evan-engineer-write"]

    def test_restrict_itself_runs_no_query(self, tokens, engineer, django_assert_num_queries):
        with django_assert_num_queries(0):
            restrict(ApiToken.objects.all(), engineer, Action.CHANGE)

    def test_the_filter_is_in_the_sql_not_applied_after(self, tokens, engineer):
        sql = str(restrict(ApiToken.objects.all(), engineer, Action.VIEW).query)
        assert "accounts_membership" in sql and "WHERE" in sql

    def test_a_council_member_sees_every_team_in_one_query(self, tokens, council_member, django_assert_num_queries):
        with django_assert_num_queries(1):
            visible = names(restrict(ApiToken.objects.all(), council_member, Action.VIEW))
        assert visible == ["evan-engineer-read", "evan-engineer-write", "oscar-other-read"]

    def test_council_seats_grant_view_only(self, tokens, council_member):
        assert names(restrict(ApiToken.objects.all(), council_member, Action.CHANGE)) == []

    def test_a_viewer_may_view_but_not_change(self, tokens, viewer):
        assert names(restrict(ApiToken.objects.all(), viewer, Action.VIEW)) == ["evan-engineer-read",
                                                                                 "evan-engineer-write"]
        assert names(restrict(ApiToken.objects.all(), viewer, Action.CHANGE)) == []

    def test_nobody_and_anonymous_see_nothing(self, tokens, nobody):
        assert names(restrict(ApiToken.objects.all(), nobody, Action.VIEW)) == []
        assert names(restrict(ApiToken.objects.all(), AnonymousUser(), Action.VIEW)) == []
        assert names(restrict(ApiToken.objects.all(), None, Action.VIEW)) == []

    def test_an_admin_sees_everything_unfiltered(self, tokens, admin_user, django_assert_num_queries):
        with django_assert_num_queries(1):
            assert len(list(restrict(ApiToken.objects.all(), admin_user, Action.MANAGE))) == 3

    def test_a_token_sees_its_team_within_its_scope_in_one_query(self, tokens, django_assert_num_queries):
        token = tokens["mine"]  # read scope, owned by an engineer of Support AI
        with django_assert_num_queries(1):
            assert names(restrict(ApiToken.objects.all(), token, Action.VIEW)) == ["evan-engineer-read",
                                                                                    "evan-engineer-write"]
        assert names(restrict(ApiToken.objects.all(), token, Action.CHANGE)) == []

    def test_a_token_loses_its_rights_when_its_user_leaves_the_team(self, tokens, team, engineer, owner):
        queryset = restrict(ApiToken.objects.all(), tokens["mine_too"], Action.VIEW)  # built before leaving
        Membership.objects.filter(team=team, user=engineer).delete()  # no service: tokens stay unrevoked
        assert names(queryset) == []

    def test_a_membership_change_shows_in_a_queryset_built_before_it(self, tokens, team, nobody):
        queryset = restrict(ApiToken.objects.all(), nobody, Action.VIEW)
        membership_set(team=team, user=nobody, role=Role.VIEWER)
        assert names(queryset) == ["evan-engineer-read", "evan-engineer-write"]

    def test_a_team_queryset_filters_itself(self, team, other_team, engineer, outsider, council_member):
        assert [t.slug for t in restrict(Team.objects.all(), engineer)] == ["support-ai"]
        assert sorted(t.slug for t in restrict(Team.objects.all(), council_member)) == ["search", "support-ai"]
        assert list(restrict(Team.objects.all(), engineer, Action.MANAGE)) == []

    def test_a_path_to_the_team_can_be_given(self, tokens, team, engineer):
        memberships = restrict(Membership.objects.all(), engineer, Action.VIEW, team_field="team")
        assert {m.team_id for m in memberships} == {team.pk}


@pytest.mark.django_db
class TestGuardianGrants:
    def test_a_direct_grant_shares_one_object_and_no_other(self, tokens, nobody, django_assert_num_queries):
        assign_perm("accounts.view_apitoken", nobody, tokens["mine"])
        with django_assert_num_queries(1):
            assert names(restrict(ApiToken.objects.all(), nobody, Action.VIEW)) == ["evan-engineer-read"]
        assert can(nobody, Action.VIEW, tokens["mine"])
        assert not can(nobody, Action.VIEW, tokens["mine_too"])

    def test_a_view_grant_does_not_allow_change(self, tokens, nobody):
        assign_perm("accounts.view_apitoken", nobody, tokens["mine"])
        assert not can(nobody, Action.CHANGE, tokens["mine"])
        assert names(restrict(ApiToken.objects.all(), nobody, Action.CHANGE)) == []

    def test_a_grant_to_a_group_shares_with_its_members(self, tokens, nobody):
        group = Group.objects.create(name="auditors")
        nobody.groups.add(group)
        assign_perm("accounts.change_apitoken", group, tokens["theirs"])
        assert names(restrict(ApiToken.objects.all(), nobody, Action.CHANGE)) == ["oscar-other-read"]
        assert can(nobody, Action.CHANGE, tokens["theirs"])

    def test_a_grant_adds_to_team_rights(self, tokens, engineer):
        assign_perm("accounts.view_apitoken", engineer, tokens["theirs"])
        assert names(restrict(ApiToken.objects.all(), engineer, Action.VIEW)) == [
            "evan-engineer-read", "evan-engineer-write", "oscar-other-read"]

    def test_a_token_never_uses_its_users_grants(self, tokens, engineer):
        assign_perm("accounts.view_apitoken", engineer, tokens["theirs"])
        assert not can(tokens["mine"], Action.VIEW, tokens["theirs"])
        assert "oscar-other-read" not in names(restrict(ApiToken.objects.all(), tokens["mine"], Action.VIEW))

    def test_a_team_is_never_shared_by_a_grant(self, team, nobody):
        assign_perm("accounts.view_team", nobody, team)
        assert not can(nobody, Action.VIEW, team)
        assert list(restrict(Team.objects.all(), nobody)) == []


@pytest.mark.django_db
class TestCan:
    @pytest.mark.parametrize(("person", "allowed"), [
        ("viewer", {"view"}),
        ("engineer", {"view", "change", "ingest"}),
        ("owner", {"view", "change", "manage", "ingest"}),
        ("outsider", set()),
        ("nobody", set()),
        ("council_member", {"view"}),
        ("admin_user", {"view", "change", "manage", "ingest"}),
    ])
    def test_roles_grant_actions_on_the_team(self, request, team, person, allowed):
        actor = request.getfixturevalue(person)
        assert {a.value for a in Action if can(actor, a, team)} == allowed

    @pytest.mark.parametrize(("role", "scope", "allowed"), [
        (Role.ENGINEER, "read", {"view"}),
        (Role.ENGINEER, "write", {"view", "change"}),
        (Role.ENGINEER, "ingest", {"ingest"}),
        (Role.OWNER, "write", {"view", "change"}),  # a token never manages
        (Role.VIEWER, "read", {"view"}),
    ])
    def test_a_token_is_capped_by_scope_and_role(self, team, role, scope, allowed):
        user = UserFactory(username=f"u-{role}-{scope}")
        membership_set(team=team, user=user, role=role)
        from apps.accounts.services import api_token_create

        token = api_token_create(team=team, user=user, name="t", scope=scope, days=1).token
        assert {a.value for a in Action if can(token, a, team)} == allowed

    def test_a_token_is_capped_by_its_users_current_role(self, team, owner, engineer, token_for):
        token, _ = token_for(engineer, team, "write")
        membership_set(team=team, user=engineer, role=Role.VIEWER)
        token = ApiToken.objects.select_related("user").get(pk=token.pk)  # the next request
        assert can(token, Action.VIEW, team) and not can(token, Action.CHANGE, team)

    def test_a_token_acts_for_its_team_only(self, team, other_team, engineer, token_for):
        Membership.objects.create(team=other_team, user=engineer, role=Role.ENGINEER)
        token, _ = token_for(engineer, team, "write")
        assert not can(token, Action.VIEW, other_team)

    def test_a_token_of_an_admin_is_not_an_admin(self, team, admin_user, token_for):
        membership_set(team=team, user=admin_user, role=Role.OWNER)
        token, _ = token_for(admin_user, team, "write")
        assert is_admin(admin_user) and not is_admin(token)
        assert not can(token, Action.MANAGE, team)

    def test_a_deactivated_user_may_do_nothing(self, team, owner):
        owner.is_active = False
        assert not can(owner, Action.VIEW, team)
        assert list(restrict(Team.objects.all(), owner)) == []

    def test_without_an_object_only_admins_may(self, engineer, admin_user):
        assert can(admin_user, Action.MANAGE) and not can(engineer, Action.VIEW)

    def test_require_raises_permission_denied_with_a_message(self, team, viewer):
        with pytest.raises(PermissionDenied, match="You may not manage this team"):
            require(viewer, Action.MANAGE, team)

    def test_get_object_for_hides_unseen_objects_and_refuses_seen_ones(self, team, outsider, viewer):
        with pytest.raises(Http404):
            get_object_for(outsider, Team.objects.all(), Action.VIEW, slug="support-ai")
        with pytest.raises(PermissionDenied):
            get_object_for(viewer, Team.objects.all(), Action.MANAGE, slug="support-ai")
        assert get_object_for(viewer, Team.objects.all(), Action.VIEW, slug="support-ai") == team


@pytest.mark.django_db
class TestTeamsFor:
    def test_teams_for_follows_roles(self, team, other_team, owner, engineer, viewer, council_member, admin_user):
        assert [t.slug for t in teams_for(owner, Action.MANAGE)] == ["support-ai"]
        assert list(teams_for(engineer, Action.MANAGE)) == []
        assert [t.slug for t in teams_for(viewer, Action.VIEW)] == ["support-ai"]
        assert sorted(t.slug for t in teams_for(council_member, Action.VIEW)) == ["search", "support-ai"]
        assert list(teams_for(council_member, Action.CHANGE)) == []
        assert teams_for(admin_user, Action.MANAGE).count() == 2

    def test_an_ingest_token_cannot_list_teams(self, team, engineer, token_for):
        token, _ = token_for(engineer, team, "ingest")
        assert list(teams_for(token, Action.VIEW)) == []
        assert [t.slug for t in teams_for(token, Action.INGEST)] == ["support-ai"]


@pytest.mark.django_db
def test_role_caches_are_dropped_by_the_services(team, owner, nobody):
    assert team_roles(nobody) == {}
    membership_set(team=team, user=nobody, role=Role.ENGINEER)
    assert team_roles(nobody) == {team.pk: Role.ENGINEER}
    membership_remove(team=team, user=nobody)
    assert team_roles(nobody) == {}


@pytest.mark.django_db
def test_council_seats_come_from_groups(council_member):
    assert council_seats(council_member) == {"security"}


@pytest.mark.parametrize(("scope", "role", "allowed"), [
    ("read", Role.VIEWER, True), ("write", Role.VIEWER, False), ("ingest", Role.VIEWER, False),
    ("write", Role.ENGINEER, True), ("ingest", Role.ENGINEER, True), ("write", None, False),
])
def test_scope_allowed_for_role(scope, role, allowed):
    assert scope_allowed_for_role(scope, role) is allowed


@pytest.mark.django_db
def test_the_person_behind_an_actor_is_the_tokens_owner_or_the_signed_in_user(team, engineer, token_for):
    token, _ = token_for(engineer, team, "read")
    assert user_id_of(token) == user_id_of(engineer) == engineer.pk
    assert user_id_of(AnonymousUser()) is None and user_id_of(None) is None
