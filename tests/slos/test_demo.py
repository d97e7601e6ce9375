from apps.slos.demo import BURNING, HEALTHY, seed_demo_slos
from apps.slos.models import Health, Slo, SloAlert


def test_the_demo_has_a_healthy_use_case_and_one_burning_fast_with_an_incident(db):
    from portal.demo import seed_demo_accounts

    seeded = seed_demo_accounts()
    assert seed_demo_slos(seeded["people"], seeded["teams"]) == 3
    healthy = Slo.objects.filter(use_case__title=HEALTHY)
    assert set(healthy.values_list("health", flat=True)) == {Health.OK}
    burning = Slo.objects.get(use_case__title=BURNING)
    assert burning.health == Health.PAGE and 0 < burning.budget_remaining < 1
    fast = SloAlert.objects.get(slo=burning, pair="fast", resolved_at__isnull=True)
    assert fast.incident is not None and fast.incident.severity == 2
    assert seed_demo_slos(seeded["people"], seeded["teams"]) == 0
