"""The post-incident review: written by the incident's engineers, root causes (technical and socio-technical),
action items with owners and due dates (reminded when due), and the sign-off that closes the incident — the
commander's or the council's, never a viewer's or an outsider's. Every change leaves one audit event."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.incidents import postmortems, services
from apps.incidents.models import ActionStatus, Status
from apps.notifications.models import Notification


def _audit(incident, action):
    return AuditEvent.objects.filter(object_type="incidents.incident", object_id=str(incident.pk), action=action)


@pytest.fixture
def resolved(incident, engineer):
    services.incident_move(incident=incident, actor=engineer, to=Status.RESOLVED)
    incident.refresh_from_db()
    return incident


def _write_review(incident, actor):
    postmortems.review_save(incident=incident, actor=actor, summary="The policy PDF was not re-indexed.",
                            impact="40 customers told a 60-day window.", runbook_followed="partly",
                            contributing_factors="- no re-index step in the release checklist\n- no freshness alert",
                            runbook_changes="Add: check the index date first.")
    postmortems.root_cause_add(incident=incident, actor=actor, category="data",
                               description="The collection still held last year's policy.")
    postmortems.root_cause_add(incident=incident, actor=actor, category="process",
                               description="Policy owners do not know documents must be re-indexed.")


def test_the_commander_writes_the_review_and_signs_it_off(resolved, engineer):
    _write_review(resolved, engineer)
    item = postmortems.action_item_add(incident=resolved, actor=engineer, title="Re-index on every policy change",
                                       owner=engineer.pk, due_date=timezone.localdate() + timedelta(days=7))
    review = postmortems.review_sign_off(incident=resolved, actor=engineer)
    resolved.refresh_from_db()
    assert resolved.status == Status.REVIEW_DONE and review.signed_off_by == engineer
    assert review.contributing_factors == ["no re-index step in the release checklist", "no freshness alert"]
    assert [c.socio_technical for c in review.root_causes.all()] == [False, True]
    assert item.owner == engineer and item.status == ActionStatus.OPEN
    for action in ("incident.review_save", "incident.action_add", "incident.review_sign_off"):
        assert _audit(resolved, action).count() == 1, action
    assert _audit(resolved, "incident.status").latest("pk").changes["status"] == ["resolved", "review_done"]
    assert _audit(resolved, "incident.review_root_cause_add").count() == 2
    # Signed off: read-only until the incident is reopened.
    with pytest.raises(ValidationError):
        postmortems.review_save(incident=resolved, actor=engineer, summary="changed")
    services.incident_move(incident=resolved, actor=engineer, to=Status.INVESTIGATING)
    postmortems.review_save(incident=resolved, actor=engineer, summary="changed after the reopen")


def test_the_sign_off_says_what_is_missing(incident, engineer):
    with pytest.raises(ValidationError) as caught:
        postmortems.review_sign_off(incident=incident, actor=engineer)
    assert caught.value.messages == ["The incident is not resolved.", "The review has no summary.",
                                     "Name at least one root cause.", "Say whether the runbook was followed."]
    assert not _audit(incident, "incident.review_sign_off").exists()


@pytest.mark.parametrize("who, allowed", [("engineer", True), ("council_member", True), ("owner", False),
                                          ("viewer", False), ("outsider", False)])
def test_who_may_sign_off(resolved, engineer, who, allowed, request):
    """The commander (the engineer who declared) and the council; a team owner who is not the commander may not."""
    _write_review(resolved, engineer)
    actor = request.getfixturevalue(who)
    if allowed:
        postmortems.review_sign_off(incident=resolved, actor=actor)
        assert _audit(resolved, "incident.review_sign_off").get().actor_label == actor.username
    else:
        with pytest.raises(PermissionDenied):
            postmortems.review_sign_off(incident=resolved, actor=actor)
        resolved.refresh_from_db()
        assert resolved.status == Status.RESOLVED


@pytest.mark.parametrize("who", ["viewer", "outsider", "nobody"])
def test_viewers_and_outsiders_may_not_write_the_review(incident, who, request):
    actor = request.getfixturevalue(who)
    with pytest.raises(PermissionDenied):
        postmortems.review_save(incident=incident, actor=actor, summary="x")
    with pytest.raises(PermissionDenied):
        postmortems.action_item_add(incident=incident, actor=actor, title="x", owner=actor.pk,
                                    due_date=timezone.localdate())
    assert not _audit(incident, "incident.review_save").exists()


def test_bad_review_input_names_each_field_and_writes_nothing(incident, engineer):
    with pytest.raises(ValidationError) as caught:
        postmortems.review_save(incident=incident, actor=engineer, runbook_followed="maybe", regression_escape=True,
                                release_kind="", release_ref="")
    assert set(caught.value.message_dict) == {"runbook_followed", "release_ref"}
    with pytest.raises(ValidationError) as caught:
        postmortems.action_item_add(incident=incident, actor=engineer, title=" ", owner=999_999,
                                    due_date=timezone.localdate() - timedelta(days=1))
    assert set(caught.value.message_dict) == {"title", "owner", "due_date"}
    with pytest.raises(ValidationError):
        postmortems.root_cause_add(incident=incident, actor=engineer, category="gremlins", description="")
    assert not incident.action_items.exists() and not _audit(incident, "incident.review_save").exists()


def test_an_action_item_owner_moves_its_status(incident, engineer, outsider, viewer):
    item = postmortems.action_item_add(incident=incident, actor=engineer, title="Add a freshness alert",
                                       owner=viewer.pk, due_date=timezone.localdate())
    assert Notification.objects.filter(user=viewer, kind="incident.action").count() == 1
    with pytest.raises(PermissionDenied):
        postmortems.action_item_set_status(item=item, actor=outsider, status="done")
    item = postmortems.action_item_set_status(item=item, actor=viewer, status="done")
    assert item.status == "done" and item.completed_at is not None
    assert _audit(incident, "incident.action_status").get().changes["status"] == ["open", "done"]


def test_owners_are_reminded_once_when_an_action_item_falls_due(incident, engineer, owner):
    today = timezone.localdate()
    due = postmortems.action_item_add(incident=incident, actor=engineer, title="Due today", owner=owner.pk,
                                      due_date=today)
    later = postmortems.action_item_add(incident=incident, actor=engineer, title="Next week", owner=owner.pk,
                                        due_date=today + timedelta(days=7))
    done = postmortems.action_item_add(incident=incident, actor=engineer, title="Done already", owner=owner.pk,
                                       due_date=today)
    postmortems.action_item_set_status(item=done, actor=engineer, status="done")

    assert postmortems.action_items_remind(today).reminded == 1
    assert postmortems.action_items_remind(today).reminded == 0  # once per due date
    reminders = Notification.objects.filter(user=owner, title__startswith="Action item due today")
    assert list(reminders.values_list("title", flat=True)) == ["Action item due today: Due today"]
    # A week later the second one falls due, and the first (still open) is overdue but was already reminded.
    assert postmortems.action_items_remind(today + timedelta(days=7)).reminded == 1
    later.refresh_from_db()
    due.refresh_from_db()
    assert later.reminded_for == later.due_date and due.reminded_for == today
    assert Notification.objects.filter(user=owner, title="Action item due today: Next week").count() == 1


def test_the_review_is_due_by_severity_after_the_resolve(resolved):
    days = postmortems.REVIEW_DUE_DAYS[resolved.severity]
    assert postmortems.review_due_date(resolved) == timezone.localdate(resolved.resolved_at) + timedelta(days=days)


def test_a_prompt_release_must_exist_and_its_production_time_is_filled_in(incident, engineer, team):
    from apps.prompts.models import LabelEvent, Prompt, PromptVersion

    prompt = Prompt.objects.create(team=team, name="support/refunds")
    version = PromptVersion.objects.create(prompt=prompt, number=7, template="x", content_hash="h7")
    promoted = timezone.now() - timedelta(days=2)
    LabelEvent.objects.create(prompt=prompt, label="production", to_version=version, actor_label="t",
                              occurred_at=promoted)
    with pytest.raises(ValidationError) as caught:
        postmortems.review_save(incident=incident, actor=engineer, regression_escape=True,
                                release_kind="prompt_version", release_ref="support/refunds@v8")
    assert "No prompt version" in caught.value.message_dict["release_ref"][0]
    review = postmortems.review_save(incident=incident, actor=engineer, regression_escape=True,
                                     release_kind="prompt_version", release_ref="support/refunds@v7")
    assert review.regression_escape and review.released_at == promoted


def test_the_commander_is_told_once_when_the_review_is_overdue(resolved, engineer):
    due = postmortems.review_due_date(resolved)
    assert postmortems.reviews_remind(due) == 0  # due today: not overdue yet
    Incident = type(resolved)
    Incident.objects.filter(pk=resolved.pk).update(resolved_at=timezone.now() - timedelta(days=30))
    later = timezone.localdate() + timedelta(days=1)
    assert postmortems.reviews_remind(later) == 1 and postmortems.reviews_remind(later) == 0
    assert Notification.objects.filter(user=engineer, title__startswith="Review overdue").count() == 1
