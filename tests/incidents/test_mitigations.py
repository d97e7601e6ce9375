"""Mitigations: feature off (the gateway's `incident` admission guard refuses the target) and rate limit (the
key's limits lowered through the gateway's services, restored on undo or at expiry). Each is audited, on the
timeline, reversible; who may apply them; bad input switches nothing."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.gateway.registry import AdmissionTarget, admission_guards
from apps.gateway.services import gateway_key_create
from apps.incidents import mitigations, selectors
from apps.incidents.models import Mitigation
from apps.notifications.models import Notification
from tests.factories import UsageEventFactory


@pytest.fixture
def key(team, owner):
    return gateway_key_create(team=team, actor=owner, name="refund-bot-prod", feature="refund-bot",
                              requests_per_minute=600).key


def _admission(key, **changes):
    values = {"key_id": key.pk, "team_id": key.team_id, "feature": key.feature, "use_case_id": key.use_case_id}
    return AdmissionTarget(**{**values, **changes})


def test_the_guard_is_registered_under_its_code():
    assert admission_guards()[mitigations.GUARD_KEY] is mitigations.incidents_guard


@pytest.mark.parametrize("scope", ["key", "feature"])
def test_feature_off_refuses_its_target_until_undone(incident, engineer, key, scope,
                                                     django_capture_on_commit_callbacks):
    target = {"scope": "key", "key_id": key.pk} if scope == "key" else \
        {"scope": "feature", "team_id": key.team_id, "feature": "refund-bot"}
    with django_capture_on_commit_callbacks() as bumped:
        mitigation = mitigations.mitigation_apply(incident=incident, actor=engineer, kind="feature_off",
                                                  target=target, params={"message": "Refunds help is paused."},
                                                  reason="wrong refund windows")
    assert bumped  # the gateway stamp moves on commit: every process asks the guard again
    refusal = mitigations.incidents_guard(_admission(key))
    assert refusal.reason.startswith("Refunds help is paused.") and incident.reference in refusal.reason
    assert refusal.switch_id == mitigation.pk  # what marks the refused requests' usage events
    assert mitigations.incidents_guard(_admission(key, key_id=key.pk + 1, feature="search")) is None
    assert AuditEvent.objects.filter(action="incident.mitigation_apply", object_id=str(incident.pk)).count() == 1
    assert incident.timeline.filter(kind="mitigation").exists()

    mitigations.mitigation_undo(mitigation=mitigation, actor=engineer)
    assert mitigations.incidents_guard(_admission(key)) is None
    mitigations.mitigation_undo(mitigation=mitigation, actor=engineer)  # twice: nothing more
    assert AuditEvent.objects.filter(action="incident.mitigation_undo", object_id=str(incident.pk)).count() == 1


def test_feature_off_for_a_use_case_refuses_keys_bound_to_it(incident, engineer, team, key):
    from apps.reviews.models import UseCase

    use_case = UseCase.objects.create(team=team, title="Refund helper")
    mitigations.mitigation_apply(incident=incident, actor=engineer, kind="feature_off",
                                 target={"scope": "use_case", "use_case_id": use_case.pk})
    assert mitigations.incidents_guard(_admission(key, use_case_id=use_case.pk))
    assert mitigations.incidents_guard(_admission(key)) is None  # the key is not bound to it


def test_rate_limit_lowers_the_key_and_undo_restores_it(incident, engineer, key):
    mitigation = mitigations.mitigation_apply(incident=incident, actor=engineer, kind="rate_limit",
                                              target={"scope": "key", "key_id": key.pk},
                                              params={"requests_per_minute": 10, "requests_per_day": 500})
    key.refresh_from_db()
    assert (key.requests_per_minute, key.requests_per_day) == (10, 500)
    assert AuditEvent.objects.filter(action="gateway_key.update", object_id=str(key.pk)).exists()
    mitigations.mitigation_undo(mitigation=mitigation, actor=engineer)
    key.refresh_from_db()
    assert (key.requests_per_minute, key.requests_per_day) == (600, None)


def test_an_expired_rate_limit_is_restored_and_an_expired_feature_off_reminds_once(incident, engineer, key):
    limited = mitigations.mitigation_apply(incident=incident, actor=engineer, kind="rate_limit",
                                           target={"scope": "key", "key_id": key.pk},
                                           params={"requests_per_minute": 10}, expires_in_minutes=5)
    off = mitigations.mitigation_apply(incident=incident, actor=engineer, kind="feature_off",
                                       target={"scope": "feature", "team_id": key.team_id, "feature": "faq"},
                                       expires_in_minutes=5)
    later = timezone.now() + timedelta(minutes=6)
    assert mitigations.mitigations_expiry_sweep(now=later) == {"restored": 1, "reminded": 1}
    assert mitigations.mitigations_expiry_sweep(now=later) == {"restored": 0, "reminded": 0}
    limited.refresh_from_db(), off.refresh_from_db(), key.refresh_from_db()
    assert limited.undone_at is not None and key.requests_per_minute == 600
    assert off.is_active and off.reminded_at is not None
    assert Notification.objects.filter(kind="incident.mitigation", user=engineer).count() == 1


@pytest.mark.parametrize("who", ["viewer", "outsider"])
def test_viewers_and_outsiders_may_not_switch(incident, key, who, request):
    with pytest.raises(PermissionDenied):
        mitigations.mitigation_apply(incident=incident, actor=request.getfixturevalue(who), kind="feature_off",
                                     target={"scope": "key", "key_id": key.pk})
    assert not Mitigation.objects.exists()


def test_an_engineer_may_not_switch_a_team_that_is_not_on_the_incident(declare, other_team, outsider, engineer):
    theirs = gateway_key_create(team=other_team, actor=None, name="search", feature="search").key
    incident = declare()
    with pytest.raises(PermissionDenied, match="not among this incident's teams"):
        mitigations.mitigation_apply(incident=incident, actor=engineer, kind="feature_off",
                                     target={"scope": "key", "key_id": theirs.pk})


@pytest.mark.parametrize(("kind", "target", "params", "field"), [
    ("teleport", {"scope": "key"}, {}, "kind"),
    ("model_fallback", {"scope": "key"}, {}, "target"),
    ("model_fallback", {"scope": "alias", "name": "no-such-alias"}, {"to": "x"}, "target"),
    ("stricter_filters", None, {}, "guard_input_pii"),
    ("stricter_filters", None, {"guard_output": "off"}, "guard_output"),  # "off" does not raise anything
    ("retrieval_disabled", {"scope": "collection", "collection_id": 999_999}, {}, "target"),
    ("prompt_rollback", {"scope": "prompt", "name": "no/such-prompt"}, {}, "target"),
    ("feature_off", {"scope": "tenant"}, {}, "target"),
    ("feature_off", {"scope": "key", "key_id": 999_999}, {}, "target"),
    ("rate_limit", {"scope": "feature", "team_id": 1, "feature": "x"}, {"requests_per_minute": 5}, "target"),
    ("rate_limit", "KEY", {"requests_per_minute": 5}, "target"),
    ("rate_limit", None, {"requests_per_minute": 6000}, "requests_per_minute"),  # not lower than 600
    ("rate_limit", None, {}, "requests_per_minute"),
])
def test_bad_input_names_the_field_and_switches_nothing(incident, engineer, key, kind, target, params, field):
    with pytest.raises(ValidationError) as caught:
        mitigations.mitigation_apply(incident=incident, actor=engineer, kind=kind,
                                     target={"scope": "key", "key_id": key.pk} if target is None else target,
                                     params=params)
    assert field in caught.value.message_dict
    assert not Mitigation.objects.exists()
    key.refresh_from_db()
    assert key.requests_per_minute == 600


def test_the_same_switch_twice_is_refused_and_a_closed_incident_switches_nothing(incident, engineer, key):
    target = {"scope": "key", "key_id": key.pk}
    mitigations.mitigation_apply(incident=incident, actor=engineer, kind="feature_off", target=target)
    with pytest.raises(ValidationError, match="switched already"):
        mitigations.mitigation_apply(incident=incident, actor=engineer, kind="feature_off", target=target)
    incident.status = "resolved"
    with pytest.raises(ValidationError, match="closed"):
        mitigations.mitigation_apply(incident=incident, actor=engineer, kind="rate_limit", target=target,
                                     params={"requests_per_minute": 5})


def test_the_refused_count_reads_the_ledger_since_the_switch(incident, engineer, key, team):
    mitigation = mitigations.mitigation_apply(incident=incident, actor=engineer, kind="feature_off",
                                              target={"scope": "key", "key_id": key.pk})
    before = mitigation.applied_at - timedelta(seconds=5)
    common = {"source": "gateway", "status": "refused", "team": team, "gateway_key_id": key.pk}
    mine = {"error_type": "incident", "switch_id": mitigation.pk}  # as the call path marks what it refused
    UsageEventFactory(occurred_at=before, **mine, **common)  # before the switch
    UsageEventFactory(**mine, **common)
    UsageEventFactory(**mine, **common)
    UsageEventFactory(error_type="incident", switch_id=mitigation.pk + 1, **common)  # another switch's refusal
    UsageEventFactory(error_type="key_limit", **common)  # another refusal
    assert selectors.effects_of([mitigation])[mitigation.pk].count == 2
    assert [str(m.effect) for m in selectors.switched_now(actor=engineer)] == ["2 refused"]


def test_every_switch_shows_what_it_did_since_it_was_applied_from_the_ledger(incident, engineer, team):
    def switch(kind, target, **params):
        return Mitigation.objects.create(incident=incident, kind=kind, target=target, target_label="it", team=team,
                                         params=params, applied_by=engineer,
                                         expires_at=timezone.now() + timedelta(hours=1))

    filters = switch("stricter_filters", {"scope": "feature", "team_id": team.pk, "feature": "refund-bot"},
                     guard_input_pii="block")
    fallback = switch("model_fallback", {"scope": "alias", "name": "support"}, to="support-large")
    without = switch("retrieval_disabled", {"scope": "collection", "collection_id": 7}, answer="without")
    refuse = switch("retrieval_disabled", {"scope": "collection", "collection_id": 8}, answer="refuse")
    earlier = filters.applied_at - timedelta(seconds=5)
    acted = [{"direction": "input", "check": "pii", "action": "block", "kinds": {"EMAIL": 1}}]
    # The ledger as the call path marks it (UsageEvent.switch_id, ADR 0122): each row with the switch that acted.
    UsageEventFactory(team=team, feature="refund-bot", guardrail_actions=acted, status="refused",
                      switch_id=filters.pk)
    UsageEventFactory(team=team, feature="refund-bot", guardrail_actions=acted, occurred_at=earlier,
                      switch_id=filters.pk)  # before
    UsageEventFactory(team=team, feature="refund-bot", guardrail_actions=acted)  # the key's own policy acted
    UsageEventFactory(team=team, feature="refund-bot")  # nothing filtered
    UsageEventFactory(alias="support", model="support-large", switch_id=fallback.pk)
    UsageEventFactory(alias="support", model="support-large", switch_id=fallback.pk)
    UsageEventFactory(alias="support", model="support-large", switch_id=fallback.pk, status="error")  # not served
    UsageEventFactory(alias="support-large", model="support-large")  # the fallback's own traffic
    UsageEventFactory(collection_id=7, operation="chat", switch_id=without.pk)
    UsageEventFactory(collection_id=7, operation="chat")  # before it, or not through it

    effects = selectors.effects_of([filters, fallback, without, refuse])
    assert [str(effects[m.pk]) for m in (filters, fallback, without)] == [
        "1 filtered", "2 served by support-large", "1 answered without retrieval"]
    assert effects[refuse.pk].count is None and str(effects[refuse.pk]) == "—"
