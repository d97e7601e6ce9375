from apps.incidents.demo import seed_demo_incidents
from apps.incidents.models import Incident


def test_the_demo_has_one_resolved_incident_with_a_timeline_and_is_idempotent(db):
    from portal.demo import seed_demo_accounts

    seeded = seed_demo_accounts()
    assert seed_demo_incidents(seeded["people"], seeded["teams"]) == 1
    incident = Incident.objects.get()
    assert incident.status == "resolved" and incident.resolved_at > incident.mitigated_at > incident.detected_at
    kinds = list(incident.timeline.values_list("kind", flat=True))
    assert kinds[0] == "declared" and kinds[-1] == "status" and "mitigation" in kinds and "note" in kinds
    assert not incident.mitigations.filter(undone_at__isnull=True).exists()  # nothing left switched
    assert seed_demo_incidents(seeded["people"], seeded["teams"]) == 0


def test_the_demo_has_five_runbooks_a_signed_off_review_and_detection_rules(db):
    from apps.incidents.demo import seed_demo_followup
    from apps.incidents.models import DetectionRule, Runbook, Signal
    from apps.incidents.regulatory import art73_status
    from apps.reviews.demo import seed_demo_reviews
    from portal.demo import seed_demo_accounts

    seeded = seed_demo_accounts()
    seed_demo_reviews(seeded["people"], seeded["teams"])
    seed_demo_incidents(seeded["people"], seeded["teams"])
    assert seed_demo_followup(seeded["people"], seeded["teams"]) == 5
    assert sorted(Runbook.objects.values_list("kind", flat=True)) == ["data_exposure", "incorrect_outputs",
                                                                      "provider_outage", "runaway_cost",
                                                                      "unsafe_content"]
    incident = Incident.objects.get()
    assert incident.status == "review_done" and incident.review.root_causes.count() == 2
    assert incident.action_items.get().owner == seeded["people"]["olivia"]
    assert sorted(DetectionRule.objects.values_list("signal", flat=True)) == sorted(Signal.values)  # one per signal
    art73 = art73_status(incident)  # linked to the high-risk refund use case; assessed as not serious
    assert [u.title for u in art73.high_risk] == ["Refund eligibility assistant"] and not art73.applies
    assert seed_demo_followup(seeded["people"], seeded["teams"]) == 0
