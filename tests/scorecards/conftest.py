from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import Role
from apps.gateway.services import gateway_key_create
from apps.reviews.models import UseCase
from tests.factories import MembershipFactory, UserFactory


@pytest.fixture
def pm(team):
    """The use case's business owner: a viewer of the team (a product manager)."""
    user = UserFactory(username="mia-pm")
    MembershipFactory(team=team, user=user, role=Role.VIEWER)
    return user


@pytest.fixture
def use_case(team, pm):
    return UseCase.objects.create(team=team, title="Refund assistant", purpose="Answer refund questions",
                                  state="active", tier="high", business_owner=pm)


@pytest.fixture
def key(team, owner, use_case):
    return gateway_key_create(team=team, actor=owner, name="refunds", feature="refunds",
                              use_case_id=use_case.pk).key


@pytest.fixture
def yesterday():
    return (timezone.now() - timedelta(days=1)).date()
