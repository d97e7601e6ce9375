from apps.reviews.demo import seed_demo_reviews
from apps.reviews.models import State, UseCase


def test_demo_covers_every_resting_state_and_tier_and_is_idempotent(db):
    from apps.prompts.demo import seed_demo_prompts
    from portal.demo import seed_demo_accounts

    seeded = seed_demo_accounts()
    seed_demo_prompts(seeded["people"], seeded["teams"])
    assert seed_demo_reviews(seeded["people"], seeded["teams"]) > 0
    states = set(UseCase.objects.values_list("state", flat=True))
    assert {State.DRAFT, State.IN_REVIEW, State.NEEDS_INFO, State.REJECTED, State.ACTIVE, State.REVIEW_DUE,
            State.EXPIRED, State.SUSPENDED, State.WITHDRAWN, State.RETIRED, State.CONDITIONS_PENDING,
            State.APPROVED_WITH_CONDITIONS} <= states
    assert set(UseCase.objects.exclude(tier="").values_list("tier", flat=True)) == {
        "low", "elevated", "high", "prohibited"}
    assert State.APPROVED in states  # approved, waiting on its required controls
    from apps.reviews.selectors import activation_blockers

    for use_case in UseCase.objects.filter(approved_at__isnull=False):  # everything that went active
        assert activation_blockers(use_case) == [], use_case.title
    assert activation_blockers(UseCase.objects.get(state=State.APPROVED))
    drafting = UseCase.objects.get(title="Reply drafting for agents")
    assert drafting.conditions.filter(kind="automatic", status="met").exists()
    assert drafting.prompt_links.exists()
    assert seed_demo_reviews(seeded["people"], seeded["teams"]) == 0


def test_demo_with_a_larger_existing_budget_still_shows_a_met_automatic_condition(db):
    """The costs demo may have set a bigger monthly budget first: the demo's cap follows it."""
    from apps.costs.services import budget_create
    from apps.prompts.demo import seed_demo_prompts
    from portal.demo import seed_demo_accounts

    seeded = seed_demo_accounts()
    budget_create(actor=seeded["people"]["olivia"], name="Support AI monthly", team=seeded["teams"]["support-ai"],
                  amount="7400")
    seed_demo_prompts(seeded["people"], seeded["teams"])
    seed_demo_reviews(seeded["people"], seeded["teams"])
    drafting = UseCase.objects.get(title="Reply drafting for agents")
    condition = drafting.conditions.get(kind="automatic")
    assert condition.status == "met" and condition.params == {"max_usd": 7500.0}
