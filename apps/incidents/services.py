"""Writes of the incident record: declare, update, move status, acknowledge, add a note. One audit event per
change and one timeline line; Sev1/Sev2 page the commander and the owning team (inbox + e-mail).

Who may: apps/incidents/rules.py. Bad input raises ValidationError naming the field; nothing is written.
Mitigations (the switches) are apps/incidents/mitigations.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Membership, Team
from apps.accounts.permissions import user_of
from apps.audit.services import Actor, audit_record, split_actor
from apps.core.safe_input import text_problem
from apps.incidents import rules
from apps.incidents.models import (
    PAGING_SEVERITIES,
    EventKind,
    Incident,
    IncidentType,
    Severity,
    Status,
    TimelineEvent,
)
from apps.incidents.paging import paging_webhooks_emit
from apps.notifications.services import notify
from apps.reviews.models import UseCase

LIST_FIELDS = ("features", "prompt_versions", "deployments", "collections", "tenants", "harm_categories",
               "affected_groups")
TEXT_FIELDS = ("summary", "customer_impact")
TIME_FIELDS = ("detected_at", "started_at")
UPDATABLE = ("title", "kind", "severity", *TEXT_FIELDS, *LIST_FIELDS, *TIME_FIELDS, "near_miss", "commander",
             "responders", "use_cases", "teams")
MAX_ITEMS, MAX_ITEM = 50, 200
MAX_TEXT = 20_000
MAX_ID = 2**63 - 1


def clean_ids(name: str, values) -> list[int]:
    """Row ids given by number (or as the objects): positive and within a bigint, else a message on `name`."""
    try:
        ids = sorted({int(getattr(v, "pk", v)) for v in values})
    except (TypeError, ValueError):
        raise ValidationError({name: "Name them by their id (a whole number)."})
    if any(not 1 <= i <= MAX_ID for i in ids):
        raise ValidationError({name: "An id is a positive whole number."})
    return ids


def actor_label(actor) -> str:
    user, token = split_actor(actor) if actor is not None else (None, None)
    return Actor(user=user, token=token).label


def timeline_add(incident: Incident, *, kind: str, text: str, actor=None, data: dict | None = None,
                 at: datetime | None = None) -> TimelineEvent:
    """One line on the timeline (inside the caller's transaction). Not audited by itself: the change it
    describes is."""
    return TimelineEvent.objects.create(incident=incident, kind=kind, text=text, actor=user_of(actor),
                                        actor_label=actor_label(actor), data=data or {},
                                        at=at or timezone.now())


# -- cleaning -----------------------------------------------------------------------------------------------
def _clean_list(name: str, value) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = [part for part in (p.strip() for p in value.replace("\n", ",").split(",")) if part]
    if not isinstance(value, list | tuple):
        raise ValidationError({name: "A list of names, or a comma-separated text."})
    out: list[str] = []
    for item in value:
        item = str(item).strip()
        if not item:
            continue
        if len(item) > MAX_ITEM or text_problem(item):
            raise ValidationError({name: f"Each entry is plain text of at most {MAX_ITEM} characters."})
        if item not in out:
            out.append(item)
    if len(out) > MAX_ITEMS:
        raise ValidationError({name: f"At most {MAX_ITEMS} entries."})
    return out


def clean_text(name: str, value, *, required: bool = False, limit: int = MAX_TEXT) -> str:
    value = (value or "").strip() if isinstance(value, str) or value is None else str(value)
    if required and not value:
        raise ValidationError({name: "This is required."})
    if len(value) > limit:
        raise ValidationError({name: f"At most {limit:,} characters."})
    problem = text_problem(value)
    if problem:
        raise ValidationError({name: problem})
    return value


def _clean_choice(name: str, value, choices) -> object:
    valid = {str(v): v for v in choices.values}
    if str(value) not in valid:
        labels = ", ".join(f"{v} ({label})" for v, label in choices.choices)
        raise ValidationError({name: f"Choose one of: {labels}."})
    return valid[str(value)]


def _clean_users(name: str, value) -> list:
    if value in (None, ""):
        return []
    ids = clean_ids(name, value)
    found = list(get_user_model().objects.filter(pk__in=ids, is_active=True))
    if len(found) != len(ids):
        raise ValidationError({name: "Some of these people do not exist or are inactive."})
    return found


def _clean_user(name: str, value):
    if value in (None, ""):
        return None
    return _clean_users(name, [value])[0]


def _clean_teams(value) -> list[Team]:
    if value in (None, ""):
        return []
    ids = clean_ids("teams", value)
    teams = list(Team.objects.filter(pk__in=ids))
    if len(teams) != len(ids):
        raise ValidationError({"teams": "Some of these teams do not exist."})
    return teams


def _clean_use_cases(value) -> list:
    if value in (None, ""):
        return []
    ids = clean_ids("use_cases", value)
    found = list(UseCase.objects.filter(pk__in=ids))
    if len(found) != len(ids):
        missing = sorted(set(ids) - {u.pk for u in found})
        raise ValidationError({"use_cases": f"No use case #{', #'.join(map(str, missing))}."})
    return found


def _clean_time(name: str, value):
    if value in (None, ""):
        return None
    if not isinstance(value, datetime):
        raise ValidationError({name: "A date and time."})
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    if value > timezone.now() + timedelta(minutes=5):
        raise ValidationError({name: "This time is in the future."})
    return value


def _clean(values: dict) -> dict:
    """Every field given, cleaned; all errors at once."""
    cleaners = {
        "title": lambda v: clean_text("title", v, required=True, limit=200),
        "kind": lambda v: _clean_choice("kind", v, IncidentType),
        "severity": lambda v: _clean_choice("severity", v, Severity),
        "near_miss": bool,
        "commander": lambda v: _clean_user("commander", v),
        "responders": lambda v: _clean_users("responders", v),
        "teams": _clean_teams,
        "use_cases": _clean_use_cases,
        **{name: (lambda v, n=name: clean_text(n, v)) for name in TEXT_FIELDS},
        **{name: (lambda v, n=name: _clean_list(n, v)) for name in LIST_FIELDS},
        **{name: (lambda v, n=name: _clean_time(n, v)) for name in TIME_FIELDS},
    }
    cleaned, errors = {}, {}
    for name, value in values.items():
        try:
            cleaned[name] = cleaners[name](value)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    return cleaned


def _snapshot(incident: Incident) -> dict:
    return {"title": incident.title, "kind": incident.kind, "severity": incident.severity,
            "status": incident.status, "commander": incident.commander_id, "near_miss": incident.near_miss,
            **{name: getattr(incident, name) for name in (*TEXT_FIELDS, *LIST_FIELDS)},
            **{name: getattr(incident, name) for name in TIME_FIELDS}}


# -- notifications ------------------------------------------------------------------------------------------
def _page(incident: Incident, *, why: str) -> None:
    """Sev1/Sev2: the commander and the owning team's members, inbox + e-mail. Sev3/Sev4: the commander's inbox."""
    paging = incident.severity in PAGING_SEVERITIES
    users = [incident.commander] if incident.commander else []
    if paging:
        users += [m.user for m in Membership.objects.filter(team_id=incident.team_id).select_related("user")]
    notify(users=users, kind="incident", title=f"{incident.get_severity_display()} {incident.reference}: "
                                                f"{incident.title}"[:200],
           body=f"{why}\nType: {incident.get_kind_display()}. Status: {incident.get_status_display()}. "
                "Acknowledge it on the incident page.",
           link=incident.get_absolute_url(), dedupe_key=f"incident:{incident.pk}:sev{incident.severity}",
           email=paging)
    paging_webhooks_emit(incident, why=why)


# -- writes -------------------------------------------------------------------------------------------------
@transaction.atomic
def incident_declare(*, actor, team: Team, title: str, kind: str, severity, as_system: bool = False,
                     **values) -> Incident:
    """Open an incident for `team` (the owning team). The commander defaults to the person declaring.
    `as_system`: a detection rule opens it (actor None, no permission check; apps/incidents/detection.py)."""
    if not (as_system and actor is None) and not rules.may_declare(actor, team):
        raise PermissionDenied(f"You may not declare incidents for {team.name}.")
    unknown = set(values) - set(UPDATABLE)
    if unknown:
        raise TypeError(f"incident_declare() got unexpected keyword arguments {sorted(unknown)}")
    cleaned = _clean({"title": title, "kind": kind, "severity": severity, **values})
    relations = {name: cleaned.pop(name) for name in ("responders", "use_cases", "teams") if name in cleaned}
    if cleaned.get("commander") is None:
        cleaned["commander"] = user_of(actor)
    now = timezone.now()
    cleaned["detected_at"] = cleaned.get("detected_at") or now
    incident = Incident.objects.create(team=team, created_by=user_of(actor), created_at=now, **cleaned)
    for name, objects in relations.items():
        getattr(incident, name).set(objects)
    timeline_add(incident, kind=EventKind.DECLARED, actor=actor,
                 text=f"Declared {incident.get_severity_display()} ({incident.get_kind_display()}).")
    _page(incident, why=f"{actor_label(actor)} declared this incident for {team.name}.")
    audit_record(action="incident.declare", obj=incident, team=team, actor=actor,
                 changes={**_snapshot(incident), "teams": sorted(t.pk for t in relations.get("teams", [])),
                          "use_cases": sorted(u.pk for u in relations.get("use_cases", []))})
    return incident


def _locked(incident: Incident) -> Incident:
    return Incident.objects.select_for_update().get(pk=incident.pk)


def _require_update(actor, incident: Incident) -> None:
    if not rules.may_update(actor, incident):
        raise PermissionDenied("Only engineers of the incident's teams and council members may change it.")


@transaction.atomic
def incident_update(*, incident: Incident, actor, **values) -> Incident:
    """Change the record's fields (not its status: incident_move)."""
    _require_update(actor, incident)
    unknown = set(values) - set(UPDATABLE)
    if unknown:
        raise TypeError(f"incident_update() got unexpected keyword arguments {sorted(unknown)}")
    cleaned = _clean(values)
    incident = _locked(incident)
    before = _snapshot(incident)
    relations = {name: cleaned.pop(name) for name in ("responders", "use_cases", "teams") if name in cleaned}
    for name, value in cleaned.items():
        setattr(incident, name, value)
    after = _snapshot(incident)
    changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    for name, objects in relations.items():
        old = sorted(getattr(incident, name).values_list("pk", flat=True))
        new = sorted(o.pk for o in objects)
        if old != new:
            getattr(incident, name).set(objects)
            changes[name] = [old, new]
    if not changes:
        return incident
    incident.save()
    incident.__dict__.pop("_team_ids", None)
    timeline_add(incident, kind=EventKind.UPDATE, actor=actor, text=f"Changed {', '.join(sorted(changes))}.",
                 data={"fields": sorted(changes)})
    if "severity" in changes and incident.severity in PAGING_SEVERITIES and \
            before["severity"] not in PAGING_SEVERITIES:
        _page(incident, why=f"{actor_label(actor)} raised this incident to {incident.get_severity_display()}.")
    if "commander" in changes and incident.commander is not None:
        notify(users=[incident.commander], kind="incident", link=incident.get_absolute_url(),
               title=f"You command {incident.reference}: {incident.title}"[:200],
               body=f"{actor_label(actor)} made you the commander of this {incident.get_severity_display()}.",
               dedupe_key=f"incident:{incident.pk}:commander:{incident.commander_id}",
               email=incident.severity in PAGING_SEVERITIES)
    audit_record(action="incident.update", obj=incident, actor=actor, changes=changes)
    return incident


@transaction.atomic
def incident_move(*, incident: Incident, actor, to: str, note: str = "") -> Incident:
    """Move the status along rules.TRANSITIONS; sets mitigated/resolved times; a reopen clears resolved."""
    incident = _locked(incident)
    current = incident.status
    if to not in rules.TRANSITIONS.get(current, ()):
        allowed = ", ".join(rules.TRANSITIONS.get(current, ())) or "nothing"
        raise ValidationError({"status": f"An incident that is {incident.get_status_display().lower()} can move "
                                         f"to: {allowed}; not {to!r}."})
    if not rules.may_move(actor, incident, to):
        raise PermissionDenied("Only the commander or a council member may resolve an incident or close its review."
                               if to in rules.CLOSING else
                               "Only engineers of the incident's teams and council members may change it.")
    note = clean_text("note", note, limit=5_000)
    now = timezone.now()
    if to == Status.MITIGATED and incident.mitigated_at is None:
        incident.mitigated_at = now
    if to == Status.RESOLVED:
        incident.resolved_at = now
        incident.mitigated_at = incident.mitigated_at or now
    reopen = rules.is_reopen(current, to)
    if reopen:
        incident.resolved_at = None
    incident.status = to
    incident.save(update_fields=["status", "mitigated_at", "resolved_at", "updated_at"])
    label = dict(Status.choices)[to]
    timeline_add(incident, kind=EventKind.STATUS, actor=actor,
                 text=("Reopened" if reopen else f"Status → {label}") + (f": {note}" if note else "."),
                 data={"from": current, "to": to})
    audit_record(action="incident.reopen" if reopen else "incident.status", obj=incident, actor=actor,
                 changes={"status": [current, to], **({"note": note} if note else {})})
    return incident


@transaction.atomic
def incident_acknowledge(*, incident: Incident, actor) -> Incident:
    """Someone has it: the page stops saying "unacknowledged". Acknowledging twice changes nothing."""
    if not (rules.may_update(actor, incident) or rules.may_close(actor, incident)):
        raise PermissionDenied("Only the commander and engineers of the incident's teams acknowledge it.")
    incident = _locked(incident)
    if incident.acknowledged_at is not None:
        return incident
    incident.acknowledged_at, incident.acknowledged_by = timezone.now(), user_of(actor)
    incident.save(update_fields=["acknowledged_at", "acknowledged_by", "updated_at"])
    timeline_add(incident, kind=EventKind.ACK, actor=actor, text="Acknowledged.")
    audit_record(action="incident.acknowledge", obj=incident, actor=actor,
                 changes={"acknowledged_at": incident.acknowledged_at})
    return incident


@transaction.atomic
def note_add(*, incident: Incident, actor, text: str) -> TimelineEvent:
    _require_update(actor, incident)
    text = clean_text("text", text, required=True, limit=5_000)
    event = timeline_add(incident, kind=EventKind.NOTE, actor=actor, text=text)
    audit_record(action="incident.note", obj=incident, actor=actor, changes={"note": text[:500]})
    return event
