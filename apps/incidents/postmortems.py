"""The post-incident review (ADR 0084): the written review of one incident, its root causes (technical and
socio-technical), its action items (owner, due date, status; the owner is reminded when one falls due) and the
sign-off that moves the incident to "review done".

Who may: the people who may change the incident (rules.may_update) write the review and its action items; the
owner of an action item may move its status too; only the commander, council members and admins
(rules.may_close) sign it off, and only once the incident is resolved. A signed-off review is read-only until
the incident is reopened. One audit event per change (`incident.review_*`, `incident.action_*`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.permissions import user_id_of, user_of
from apps.audit.services import audit_record
from apps.incidents import rules
from apps.incidents.models import (
    ACTION_OPEN_STATUSES,
    ActionItem,
    ActionStatus,
    CauseCategory,
    EventKind,
    Incident,
    PostIncidentReview,
    ReleaseKind,
    RootCause,
    RunbookFollowed,
    Severity,
    Status,
)
from apps.incidents.services import actor_label, clean_text, incident_move, timeline_add
from apps.notifications.services import notify
from apps.prompts.models import PRODUCTION, LabelEvent, PromptVersion

# Reviews are due this many days after the incident is resolved (Sev1 soonest).
REVIEW_DUE_DAYS = {Severity.SEV1: 5, Severity.SEV2: 7, Severity.SEV3: 14, Severity.SEV4: 28}
REVIEW_TEXT = ("summary", "impact", "went_well", "went_badly", "runbook_changes")
REVIEW_FIELDS = (*REVIEW_TEXT, "contributing_factors", "runbook_followed", "regression_escape", "release_kind",
                 "release_ref", "released_at")
MAX_FACTORS = 30


def review_due_date(incident: Incident) -> date | None:
    """When the review is due: the resolve date plus the severity's days; None while the incident is open."""
    if incident.resolved_at is None:
        return None
    return timezone.localdate(incident.resolved_at) + timedelta(days=REVIEW_DUE_DAYS[incident.severity])


def review_of(incident: Incident) -> PostIncidentReview | None:
    return PostIncidentReview.objects.filter(incident=incident).select_related("signed_off_by").first()


def is_locked(review: PostIncidentReview | None, incident: Incident) -> bool:
    return review is not None and review.signed_off_at is not None and incident.status == Status.REVIEW_DONE


def _require_write(actor, incident: Incident, review: PostIncidentReview | None) -> None:
    """May `actor` write the review now? The incident's status is read under a row lock (a reopen unlocks it)."""
    if not rules.may_update(actor, incident):
        raise PermissionDenied("Only engineers of the incident's teams and council members write its review.")
    incident.status = Incident.objects.select_for_update().values_list("status", flat=True).get(pk=incident.pk)
    if is_locked(review, incident):
        raise ValidationError({"__all__": "The review is signed off; reopen the incident to change it."})


def _factors(value) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = value.splitlines()
    out = []
    for line in value:
        line = clean_text("contributing_factors", str(line).strip().lstrip("-* ").strip(), limit=500)
        if line and line not in out:
            out.append(line)
    if len(out) > MAX_FACTORS:
        raise ValidationError({"contributing_factors": f"At most {MAX_FACTORS} factors."})
    return out


def _released_at(value):
    if value in (None, ""):
        return None
    if not isinstance(value, datetime):
        raise ValidationError({"released_at": "A date and time."})
    return timezone.make_aware(value) if timezone.is_naive(value) else value


def _clean_review(values: dict) -> dict:
    cleaned, errors = {}, {}
    for name, value in values.items():
        try:
            if name in REVIEW_TEXT:
                cleaned[name] = clean_text(name, value)
            elif name == "contributing_factors":
                cleaned[name] = _factors(value)
            elif name == "runbook_followed":
                if value not in ("", None, *RunbookFollowed.values):
                    raise ValidationError({name: "Yes, partly, no, or there was no runbook."})
                cleaned[name] = value or ""
            elif name == "release_kind":
                if value not in ("", None, *ReleaseKind.values):
                    raise ValidationError({name: f"One of: {', '.join(ReleaseKind.values)}."})
                cleaned[name] = value or ""
            elif name == "release_ref":
                cleaned[name] = clean_text(name, value, limit=200)
            elif name == "released_at":
                cleaned[name] = _released_at(value)
            elif name == "regression_escape":
                cleaned[name] = bool(value)
            else:
                raise TypeError(f"review_save() got an unexpected keyword argument {name!r}")
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if cleaned.get("regression_escape") and not (cleaned.get("release_kind") and cleaned.get("release_ref")):
        errors["release_ref"] = "A regression escape names the release that caused it (its kind and reference)."
    elif cleaned.get("release_kind") == ReleaseKind.PROMPT_VERSION and cleaned.get("release_ref"):
        try:
            released = _prompt_release(cleaned["release_ref"])
        except ValidationError as exc:
            errors.update(exc.message_dict)
        else:
            cleaned["released_at"] = cleaned.get("released_at") or released
    if errors:
        raise ValidationError(errors)
    return cleaned


def _prompt_release(ref: str) -> datetime | None:
    """A prompt version named "namespace/name@v7" must exist; returns when it last went to production (or None)."""
    name, _, number = ref.rpartition("@v")
    version = PromptVersion.objects.filter(prompt__name=name, number=int(number)).first() \
        if name and number.isdigit() and len(number) < 10 else None
    if version is None:
        raise ValidationError({"release_ref": f"No prompt version {ref!r}: name it as namespace/name@v7."})
    moved = LabelEvent.objects.filter(to_version=version, label=PRODUCTION).order_by("-occurred_at").first()
    return moved.occurred_at if moved else None


@transaction.atomic
def review_save(*, incident: Incident, actor, **values) -> PostIncidentReview:
    """Create or change the review's text, runbook answer and release link."""
    review = review_of(incident)
    _require_write(actor, incident, review)
    cleaned = _clean_review(values)
    created = review is None
    if created:
        review = PostIncidentReview(incident=incident)
    changes = {}
    for name, value in cleaned.items():
        old = getattr(review, name)
        if old != value:
            changes[name] = [old, value] if name not in REVIEW_TEXT else [len(old or ""), len(value)]
            setattr(review, name, value)
    if not changes and not created:
        return review
    review.updated_at, review.updated_by = timezone.now(), user_of(actor)
    review.save()
    timeline_add(incident, kind=EventKind.UPDATE, actor=actor,
                 text="Started the review." if created else f"Review: changed {', '.join(sorted(changes))}.")
    audit_record(action="incident.review_save", obj=incident, actor=actor,
                 changes={"created": created, **changes})
    return review


def _ensure_review(incident: Incident, actor) -> PostIncidentReview:
    review = review_of(incident)
    _require_write(actor, incident, review)
    if review is None:
        review = PostIncidentReview.objects.create(incident=incident, updated_by=user_of(actor))
    return review


@transaction.atomic
def root_cause_add(*, incident: Incident, actor, category: str, description: str) -> RootCause:
    review = _ensure_review(incident, actor)
    errors = {}
    if category not in CauseCategory.values:
        errors["category"] = f"Choose one of: {', '.join(CauseCategory.labels)}."
    try:
        description = clean_text("description", description, required=True, limit=2_000)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    cause = RootCause.objects.create(review=review, category=category, description=description)
    audit_record(action="incident.review_root_cause_add", obj=incident, actor=actor,
                 changes={"category": category, "description": description[:500]})
    return cause


@transaction.atomic
def root_cause_remove(*, incident: Incident, actor, cause_id: int) -> None:
    review = _ensure_review(incident, actor)
    cause = review.root_causes.filter(pk=cause_id).first()
    if cause is None:
        raise ValidationError({"__all__": "No such root cause on this review."})
    audit_record(action="incident.review_root_cause_remove", obj=incident, actor=actor,
                 changes={"category": cause.category, "description": cause.description[:500]})
    cause.delete()


def _owner(value):
    try:
        pk = int(getattr(value, "pk", value))
    except (TypeError, ValueError):
        raise ValidationError({"owner": "Choose the person who owns it."})
    owner = get_user_model().objects.filter(pk=pk, is_active=True).first()
    if owner is None:
        raise ValidationError({"owner": "This person does not exist or is inactive."})
    return owner


@transaction.atomic
def action_item_add(*, incident: Incident, actor, title: str, owner, due_date: date) -> ActionItem:
    """A follow-up with one owner and a due date (today or later); the owner is told in the inbox."""
    _require_write(actor, incident, review_of(incident))
    errors = {}
    try:
        title = clean_text("title", title, required=True, limit=300)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    try:
        owner = _owner(owner)
        if owner.pk not in {u.pk for u in owner_choices(incident)}:
            raise ValidationError({"owner": "Choose a member of the incident's teams, its commander or a responder."})
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if not isinstance(due_date, date):
        errors["due_date"] = "A date."
    elif due_date < timezone.localdate():
        errors["due_date"] = "The due date is in the past."
    if errors:
        raise ValidationError(errors)
    item = ActionItem.objects.create(incident=incident, title=title, owner=owner, due_date=due_date,
                                     created_by=user_of(actor))
    timeline_add(incident, kind=EventKind.UPDATE, actor=actor,
                 text=f"Action item for {owner.get_username()}, due {due_date:%Y-%m-%d}: {title}")
    notify(users=[owner], kind="incident.action", link=incident.get_absolute_url() + "review/",
           title=f"Action item from {incident.reference}: {title}"[:200],
           body=f"{actor_label(actor)} gave you an action item, due {due_date:%Y-%m-%d}.",
           dedupe_key=f"incident-action:{item.pk}:assigned", email=False)
    audit_record(action="incident.action_add", obj=incident, actor=actor,
                 changes={"action_item": item.pk, "title": title, "owner": owner.pk, "due_date": due_date})
    return item


@transaction.atomic
def action_item_set_status(*, item: ActionItem, actor, status: str) -> ActionItem:
    """Move an action item (its owner, or whoever may change the incident). Allowed after the sign-off too:
    action items outlive the review."""
    incident = item.incident
    owner = user_id_of(actor) == item.owner_id and user_id_of(actor) and rules.writes_as_its_user(actor)
    if not (rules.may_update(actor, incident) or owner):
        raise PermissionDenied("Only the owner and engineers of the incident's teams move an action item.")
    if status not in ActionStatus.values:
        raise ValidationError({"status": f"One of: {', '.join(ActionStatus.values)}."})
    item = ActionItem.objects.select_for_update().get(pk=item.pk)
    if item.status == status:
        return item
    before = item.status
    item.status = status
    item.completed_at = timezone.now() if status in (ActionStatus.DONE, ActionStatus.WONT_DO) else None
    item.save(update_fields=["status", "completed_at"])
    audit_record(action="incident.action_status", obj=incident, actor=actor,
                 changes={"action_item": item.pk, "status": [before, status]})
    return item


def sign_off_problems(incident: Incident, review: PostIncidentReview | None) -> list[str]:
    """What still stops the sign-off (empty: it may be signed off)."""
    problems = []
    if incident.status != Status.RESOLVED:
        problems.append("The incident is not resolved.")
    if review is None or not review.summary:
        problems.append("The review has no summary.")
    if review is None or not review.root_causes.exists():
        problems.append("Name at least one root cause.")
    if review is None or not review.runbook_followed:
        problems.append("Say whether the runbook was followed.")
    return problems


@transaction.atomic
def review_sign_off(*, incident: Incident, actor) -> PostIncidentReview:
    """The commander (or council, admins) accepts the review: it is locked and the incident moves to review done."""
    if not rules.may_close(actor, incident):
        raise PermissionDenied("Only the commander or a council member signs off the review.")
    incident = Incident.objects.select_for_update().get(pk=incident.pk)
    review = review_of(incident)
    problems = sign_off_problems(incident, review)
    if problems:
        raise ValidationError({"__all__": problems})
    review.signed_off_at, review.signed_off_by = timezone.now(), user_of(actor)
    review.save(update_fields=["signed_off_at", "signed_off_by"])
    audit_record(action="incident.review_sign_off", obj=incident, actor=actor,
                 changes={"signed_off_at": review.signed_off_at,
                          "open_action_items": incident.action_items.filter(status__in=ACTION_OPEN_STATUSES)
                          .count()})
    incident_move(incident=incident, actor=actor, to=Status.REVIEW_DONE, note="Review signed off.")
    return review


# -- reminders -----------------------------------------------------------------------------------------------
@dataclass
class ReminderSweep:
    reminded: int = 0


def action_items_remind(today: date | None = None) -> ReminderSweep:
    """Remind each owner once per due date when an open action item falls due (inbox + e-mail; the reminder is
    kept per due date, so a changed date reminds again). Claimed with a conditional UPDATE so two workers never
    both send."""
    today = today or timezone.localdate()
    sweep = ReminderSweep()
    due = ActionItem.objects.filter(status__in=ACTION_OPEN_STATUSES, due_date__lte=today) \
        .select_related("owner", "incident")
    for item in due:
        if item.reminded_for == item.due_date:
            continue
        claimed = ActionItem.objects.filter(pk=item.pk).exclude(reminded_for=item.due_date) \
            .update(reminded_for=item.due_date)
        if not claimed:
            continue
        overdue = item.due_date < today
        notify(users=[item.owner], kind="incident.action", link=item.incident.get_absolute_url() + "review/",
               title=f"Action item {'overdue' if overdue else 'due today'}: {item.title}"[:200],
               body=f"From {item.incident.reference} ({item.incident.title}), due {item.due_date:%Y-%m-%d}. Mark it "
                    "done on the review page, or move its due date with the commander.",
               dedupe_key=f"incident-action:{item.pk}:due:{item.due_date:%Y-%m-%d}")
        sweep.reminded += 1
    return sweep


def reviews_remind(today: date | None = None) -> int:
    """Tell the commander (inbox + e-mail), once, when a resolved incident's review is past its due date and not
    signed off (REVIEW_DUE_DAYS by severity). Returns how many were told."""
    today = today or timezone.localdate()
    told = 0
    resolved = Incident.objects.filter(status=Status.RESOLVED, commander__isnull=False,
                                       resolved_at__lt=timezone.now() - timedelta(days=min(REVIEW_DUE_DAYS.values())))
    for incident in resolved.select_related("commander"):
        due = review_due_date(incident)
        if due is None or due >= today:
            continue
        told += len(notify(users=[incident.commander], kind="incident.review",
                           link=incident.get_absolute_url() + "review/",
                           title=f"Review overdue: {incident.reference} {incident.title}"[:200],
                           body=f"The review of this {incident.get_severity_display()} was due {due:%Y-%m-%d}. Write "
                                "it and sign it off on the review page.",
                           dedupe_key=f"incident-review-due:{incident.pk}"))
    return told


# -- reads for the review page ---------------------------------------------------------------------------------
def action_items_of(incident: Incident):
    return incident.action_items.select_related("owner").order_by("due_date", "id")


def owner_choices(incident: Incident) -> list:
    """Who may own an action item: members of the incident's teams, its commander and responders."""
    people = get_user_model().objects.filter(is_active=True, memberships__team_id__in=rules.team_ids_of(incident))
    extra = [u for u in (incident.commander, *incident.responders.all()) if u is not None and u.is_active]
    found = {u.pk: u for u in (*people, *extra)}
    return sorted(found.values(), key=lambda u: u.get_username())


def action_item_get(*, incident: Incident, pk: int) -> ActionItem:
    item = incident.action_items.select_related("incident", "owner").filter(pk=pk).first()
    if item is None:
        raise ValidationError({"__all__": "No such action item on this incident."})
    return item
