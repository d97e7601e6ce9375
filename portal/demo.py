"""Demo data for `make run`: people for every role, two teams, the offline model and the price list.

Idempotent: running it again changes nothing. Each area adds its own `seed_demo_<area>()` here as it arrives.
"""

import functools

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction

from apps.accounts.models import CouncilSeat, Membership, Role, Team
from apps.accounts.services import council_seat_set, membership_set, team_create
from apps.core.request_context import acting_as
from apps.costs.demo import seed_demo_costs
from apps.costs.services import prices_seed
from apps.evals.demo import seed_demo_evals
from apps.experiments.demo import seed_demo_experiments
from apps.incidents.demo import seed_demo_followup, seed_demo_incidents
from apps.llm.aliases import aliases_seed_local
from apps.llm.services import catalog_seed_local
from apps.prompts.demo import seed_demo_prompts
from apps.rag.demo import seed_demo_rag
from apps.redteam.demo import seed_demo_redteam
from apps.reviews.demo import seed_demo_reviews
from apps.scorecards.demo import seed_demo_scorecards
from apps.slos.demo import seed_demo_slos

DEMO_PASSWORD = "portal-demo"  # dev only; README lists it

TEAMS = {
    "support-ai": ("Support AI", "Assistants for the customer support desk."),
    "search": ("Search", "Search and retrieval for the knowledge base."),
}
PEOPLE = [
    # username, full name, staff, [(team, role)], council seat
    ("admin", "Ada Admin", True, [], None),
    ("olivia", "Olivia Owner", False, [("support-ai", Role.OWNER)], None),
    ("evan", "Evan Engineer", False, [("support-ai", Role.ENGINEER)], None),
    ("erin", "Erin Engineer", False, [("search", Role.OWNER)], None),
    ("pat", "Pat Product-Manager", False, [("support-ai", Role.VIEWER), ("search", Role.VIEWER)], None),
    ("sam", "Sam Security", False, [], CouncilSeat.SECURITY),
    ("priya", "Priya Privacy", False, [], CouncilSeat.PRIVACY),
    ("lee", "Lee Legal", False, [], CouncilSeat.LEGAL),
    ("paula", "Paula Product", False, [], CouncilSeat.PRODUCT),
]


@functools.cache
def _demo_password_hash() -> str:
    # One hash for all demo people: each PBKDF2 hash costs ~0.3 s, and `make run` waits for these.
    return make_password(DEMO_PASSWORD)


def _user(username: str, full_name: str, staff: bool):
    User = get_user_model()
    first, _, last = full_name.partition(" ")
    user, created = User.objects.get_or_create(
        username=username,
        defaults={"first_name": first, "last_name": last, "email": f"{username}@example.com",
                  "is_staff": staff, "is_superuser": staff},
    )
    if created:
        user.password = _demo_password_hash()
        user.save(update_fields=["password"])
    return user


@transaction.atomic
def seed_demo_accounts() -> dict:
    teams = {}
    for slug, (name, description) in TEAMS.items():
        teams[slug] = Team.objects.filter(slug=slug).first() or team_create(name=name, slug=slug,
                                                                            description=description)
    people = {}
    for username, full_name, staff, memberships, seat in PEOPLE:
        user = _user(username, full_name, staff)
        people[username] = user
        for slug, role in memberships:
            if not Membership.objects.filter(team=teams[slug], user=user, role=role).exists():
                membership_set(team=teams[slug], user=user, role=role)
        if seat:
            council_seat_set(user=user, seat=seat)
    return {"teams": teams, "people": people}


def seed_demo_models() -> None:
    catalog_seed_local()
    aliases_seed_local()  # "chat" and "embeddings", routed to the offline models
    prices_seed()


def seed_demo_quick() -> None:
    """What a first login needs, fast: `make run` loads this before serving and the rest beside it."""
    with acting_as(None):
        seed_demo_accounts()
        seed_demo_models()


def seed_demo() -> None:
    """Every area's demo, in the order of the map (lower apps first: higher ones link to their data)."""
    with acting_as(None):
        accounts = seed_demo_accounts()
        seed_demo_models()
    people, teams = accounts["people"], accounts["teams"]
    seed_demo_prompts(people, teams)
    seed_demo_evals(people, teams)
    seed_demo_rag(people, teams)
    seed_demo_costs(people, teams)
    seed_demo_reviews(people, teams)
    seed_demo_experiments(people, teams)
    seed_demo_incidents(people, teams)
    seed_demo_redteam(people, teams)
    seed_demo_followup(people, teams)
    seed_demo_slos(people, teams)
    seed_demo_scorecards(people, teams)
