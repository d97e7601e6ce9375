from django.contrib.auth import get_user_model

from apps.accounts.models import Membership, Team
from apps.accounts.permissions import council_seats
from apps.audit.models import AuditEvent
from portal.demo import DEMO_PASSWORD, PEOPLE, seed_demo_accounts


def test_demo_accounts_cover_every_role_and_seat(db):
    seed_demo_accounts()
    User = get_user_model()
    assert User.objects.get(username="admin").is_staff
    roles = set(Membership.objects.values_list("role", flat=True))
    assert roles == {"owner", "engineer", "viewer"}
    seats = set().union(*(council_seats(User.objects.get(username=u)) for u in ("sam", "priya", "lee", "paula")))
    assert seats == {"security", "privacy", "legal", "product"}
    assert User.objects.get(username="evan").check_password(DEMO_PASSWORD)


def test_demo_accounts_are_idempotent(db):
    seed_demo_accounts()
    counts = (get_user_model().objects.count(), Team.objects.count(), Membership.objects.count(),
              AuditEvent.objects.count())
    seed_demo_accounts()
    assert (get_user_model().objects.count(), Team.objects.count(), Membership.objects.count(),
            AuditEvent.objects.count()) == counts
    assert counts[0] == len(PEOPLE)
