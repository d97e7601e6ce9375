"""team_for_api: the one lookup of a team named by slug in an API call (evals and prompts APIs use it)."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from apps.accounts.permissions import Action
from apps.accounts.selectors import team_for_api


@pytest.mark.django_db
def test_an_engineer_gets_their_team_to_change(engineer, team):
    assert team_for_api(actor=engineer, slug="support-ai", action=Action.CHANGE) == team


@pytest.mark.django_db
def test_a_viewer_may_read_but_not_change(viewer, team):
    assert team_for_api(actor=viewer, slug="support-ai", action=Action.VIEW) == team
    with pytest.raises(PermissionDenied):
        team_for_api(actor=viewer, slug="support-ai", action=Action.CHANGE)


@pytest.mark.django_db
def test_an_unknown_slug_and_a_team_one_cannot_see_look_the_same(outsider, team):
    with pytest.raises(Http404, match="no team 'nope'"):
        team_for_api(actor=outsider, slug="nope", action=Action.VIEW)
    with pytest.raises(Http404, match="no team 'support-ai'"):
        team_for_api(actor=outsider, slug="support-ai", action=Action.VIEW)


def test_the_evals_and_prompts_apis_share_the_lookup():
    from apps.evals import api as evals_api
    from apps.prompts import api as prompts_api

    assert evals_api.team_for_api is team_for_api
    assert prompts_api.team_for_api is team_for_api
    assert not hasattr(evals_api, "_team") and not hasattr(prompts_api, "_team_for")
