"""The switches an incident applies to live traffic, each one click, audited, on the timeline, reversible.

Built (ADR 0080):
- **feature off** (`feature_off`): the gateway refuses a key's, a feature's (team + feature) or a use case's
  traffic with 423 and a message the product can show. `incidents_guard` below is registered into the gateway's
  admission-guard registry (apps/incidents/hooks.py); apply and undo call `admission_changed()`, which moves
  the gateway stamp on commit, so every gateway process asks again on its next request.
- **rate limit** (`rate_limit`): a key's requests per minute (and per day) lowered through the gateway's own
  `gateway_key_update` (its audit event, its stamp), the values before kept in `params["before"]` and put back
  on undo or at expiry.
Planned, same row shape (kind + target + params): model fallback, retrieval disabled, stricter filters,
prompt rollback.

Expiry: a rate limit is restored at `expires_at`; a feature stays off (turning traffic back on by itself in
the middle of an incident is worse) and its applier and the commander get a reminder, once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.permissions import is_admin, user_of
from apps.audit.services import audit_record
from apps.gateway.models import GatewayKey
from apps.gateway.registry import AdmissionTarget, LimitSwitch, Refusal, admission_changed
from apps.gateway.services import gateway_key_update
from apps.incidents import rules
from apps.incidents.models import EventKind, Incident, Mitigation, MitigationKind
from apps.incidents.services import MAX_ID, clean_text, incident_declare, timeline_add
from apps.llm.switches import CallScope, CallSwitch, switches_changed
from apps.notifications.services import notify
from apps.prompts.models import Prompt
from apps.reviews.models import UseCase, UseCaseCollection, UseCasePrompt

GUARD_KEY = "incident"  # the admission guard's key: the 423's `code`, and the refused usage events' error type
RATE_LIMIT_CODE = "key_limit"  # the gateway's own 429 code: what a lowered limit refuses with
SCOPES = {MitigationKind.FEATURE_OFF: ("key", "feature", "use_case", "prompt"), MitigationKind.RATE_LIMIT: ("key",)}
DEFAULT_MESSAGE = "This feature is switched off for now while we handle an incident. Please try again later."
DEFAULT_EXPIRY = timedelta(hours=4)
MIN_EXPIRY, MAX_EXPIRY = timedelta(minutes=5), timedelta(days=7)
RATE_FIELDS = ("requests_per_minute", "requests_per_day")


@dataclass(frozen=True)
class SwitchKind:
    """A kind of switch besides the two built here (apps/incidents/switches.py registers the others at start-up).

    target(target, incident) -> (clean target, label, the target's team) · params(params, clean target) -> clean
    params · apply(mitigation, actor) -> params to store (after the switch acted; the row exists, unsaved
    changes) · undo(mitigation, actor) -> a note for the timeline ("" when all was put back) · describe(m) ->
    " (…)" after the label. Each raises ValidationError naming the field at fault."""

    scopes: tuple[str, ...]
    target: Callable[[dict, Incident], tuple[dict, str, Team]]
    params: Callable[[dict, dict], dict]
    apply: Callable[[Mitigation, object], dict]
    undo: Callable[[Mitigation, object], str]
    describe: Callable[[Mitigation], str]


_kinds: dict[str, SwitchKind] = {}


def register_kind(kind: str, spec: SwitchKind) -> None:
    _kinds[kind] = spec


def scopes_of(kind: str) -> tuple[str, ...]:
    return SCOPES[kind] if kind in SCOPES else _kinds[kind].scopes


def kinds() -> tuple[str, ...]:
    """Every kind that can be applied now."""
    return (*SCOPES, *_kinds)


def whole(name: str, value, *, required: bool) -> int | None:
    if value in (None, ""):
        if required:
            raise ValidationError({name: "This is required."})
        return None
    try:
        number = int(str(value).strip())
        if not 1 <= number <= MAX_ID:
            raise ValueError
    except (TypeError, ValueError):
        raise ValidationError({name: "A whole number of at least 1."})
    return number


def gateway_target(kind: str, target: dict) -> tuple[dict, str, Team]:
    """(clean target, label, the target's team) or ValidationError naming `target`."""
    scope = target.get("scope")
    if scope not in scopes_of(kind):
        raise ValidationError({"target": f"A {dict(MitigationKind.choices)[kind].lower()} acts on: "
                                         f"{', '.join(scopes_of(kind))}."})
    if scope == "key":
        key_id = whole("target", target.get("key_id"), required=True)
        key = GatewayKey.objects.select_related("team").filter(pk=key_id).first()
        if key is None:
            raise ValidationError({"target": f"No gateway key #{key_id}."})
        if key.revoked_at is not None:
            raise ValidationError({"target": f"Key {key.prefix} is revoked already."})
        return {"scope": "key", "key_id": key.pk}, f"key {key.name} ({key.prefix})", key.team
    if scope == "feature":
        team_id = whole("target", target.get("team_id"), required=True)
        team = Team.objects.filter(pk=team_id).first()
        feature = str(target.get("feature") or "").strip()
        if team is None:
            raise ValidationError({"target": f"No team #{team_id}."})
        if not feature or len(feature) > 120:
            raise ValidationError({"target": "Name the feature (as on its gateway keys), at most 120 characters."})
        return {"scope": "feature", "team_id": team.pk, "feature": feature}, f"feature {feature} of {team.name}", team
    if scope == "prompt":
        return prompt_target(target)
    use_case_id = whole("target", target.get("use_case_id"), required=True)
    use_case = UseCase.objects.select_related("team").filter(pk=use_case_id).first()
    if use_case is None:
        raise ValidationError({"target": f"No use case #{use_case_id}."})
    return {"scope": "use_case", "use_case_id": use_case.pk}, f"use case {use_case.title}", use_case.team


def prompt_target(target: dict) -> tuple[dict, str, Team]:
    """A prompt by `prompt_id` (or `name`): (clean target, label, its team) or ValidationError naming `target`."""
    name = str(target.get("name") or "").strip()
    query = {"name": name} if name else {"pk": whole("target", target.get("prompt_id"), required=True)}
    prompt = Prompt.objects.select_related("team").filter(**query).first()
    if prompt is None:
        raise ValidationError({"target": f"No prompt {name or '#' + str(target.get('prompt_id'))}."})
    return {"scope": "prompt", "prompt_id": prompt.pk}, f"prompt {prompt.name}", prompt.team


def traffic_changed() -> None:
    """A feature off or stricter filters moved: the gateway's processes ask their guards again on their next
    request (the gateway stamp) and every process's portal calls ask llm's call switches again (their stamp)."""
    admission_changed()
    switches_changed()


def _expiry(expires_in_minutes) -> datetime:
    if expires_in_minutes in (None, ""):
        return timezone.now() + DEFAULT_EXPIRY
    minutes = whole("expires_in_minutes", expires_in_minutes, required=True)
    if not MIN_EXPIRY <= timedelta(minutes=minutes) <= MAX_EXPIRY:
        raise ValidationError({"expires_in_minutes": f"From {int(MIN_EXPIRY.total_seconds() // 60)} minutes to "
                                                     f"{MAX_EXPIRY.days} days."})
    return timezone.now() + timedelta(minutes=minutes)


def _require_team(actor, incident: Incident, team: Team) -> None:
    if team.pk not in rules.team_ids_of(incident) and not (is_admin(actor) or rules.is_council_member(actor)):
        raise PermissionDenied(f"{team.name} is not among this incident's teams: add it to the incident first.")


def _active(kind: str, target: dict):
    return Mitigation.objects.filter(kind=kind, undone_at__isnull=True, target=target)


@transaction.atomic
def mitigation_apply(*, incident: Incident, actor, kind: str, target: dict, params: dict | None = None,
                     reason: str = "", expires_in_minutes=None) -> Mitigation:
    """Switch something now. Bad input: ValidationError naming the field, nothing switched."""
    if not rules.may_switch(actor, incident):
        raise PermissionDenied("Only the incident's responders, its commander, engineers of its teams and council "
                               "members apply mitigations.")
    if kind not in kinds():
        raise ValidationError({"kind": f"Choose one of: {', '.join(kinds())}."})
    if not isinstance(target, dict):
        raise ValidationError({"target": "Say what to switch."})
    spec = _kinds.get(kind)
    if not incident.is_open:
        raise ValidationError({"kind": "This incident is closed: reopen it before switching anything."})
    params = dict(params or {})
    errors, clean = {}, {}
    parse_target = (lambda: spec.target(target, incident)) if spec else (lambda: gateway_target(kind, target))
    for name, step in (("target", parse_target),
                       ("reason", lambda: clean_text("reason", reason, limit=2_000)),
                       ("expires_at", lambda: _expiry(expires_in_minutes))):
        try:
            clean[name] = step()
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if "target" in clean:
        _require_team(actor, incident, clean["target"][2])
        if _active(kind, clean["target"][0]).exists():
            errors["target"] = f"{clean['target'][1]} is switched already ({kind.replace('_', ' ')})."
    if spec is not None:
        if "target" in clean:
            try:
                params = spec.params(params, clean["target"][0])
            except ValidationError as exc:
                errors.update(exc.message_dict)
    elif kind == MitigationKind.FEATURE_OFF:
        try:
            params = {"message": clean_text("message", params.get("message"), limit=300) or DEFAULT_MESSAGE}
        except ValidationError as exc:
            errors.update(exc.message_dict)
    else:
        try:
            params = _rate_params(params, clean["target"][0]["key_id"] if "target" in clean else None)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    (target, label, team), reason, expires_at = clean["target"], clean["reason"], clean["expires_at"]
    if kind == MitigationKind.RATE_LIMIT:
        key = GatewayKey.objects.get(pk=target["key_id"])
        gateway_key_update(key=key, actor=None, **{f: params[f] for f in RATE_FIELDS if params[f] is not None})
    mitigation = Mitigation.objects.create(incident=incident, kind=kind, target=target, target_label=label[:300],
                                           team=team, params=params, reason=reason, applied_by=user_of(actor),
                                           expires_at=expires_at)
    if kind == MitigationKind.FEATURE_OFF:
        traffic_changed()
    if spec is not None:
        mitigation.params = spec.apply(mitigation, actor)
        mitigation.save(update_fields=["params"])
        params = mitigation.params
    if team.pk not in rules.team_ids_of(incident):
        incident.teams.add(team)
    timeline_add(incident, kind=EventKind.MITIGATION, actor=actor,
                 text=f"{mitigation.get_kind_display()} on {label}" + _describe(mitigation) +
                      (f": {reason}" if reason else "."),
                 data={"mitigation": mitigation.pk, "kind": kind, "target": target})
    audit_record(action="incident.mitigation_apply", obj=incident, actor=actor,
                 changes={"mitigation": mitigation.pk, "kind": kind, "target": target, "params": params,
                          "reason": reason, "expires_at": expires_at})
    return mitigation


@transaction.atomic
def mitigate_object(*, obj, actor, kind: str, incident: Incident | None = None, declare: dict | None = None,
                    params: dict | None = None, reason: str = "", expires_in_minutes=None) -> Mitigation:
    """A switch applied from an object's page (`obj`: apps/incidents/objects.Switchable) on `incident`, an open one,
    or on one declared with it (`declare`: title, kind, severity; for the object's team, `rules.may_declare`):
    declared and switched together, or neither. Bad input: ValidationError naming the field, nothing changed."""
    if kind not in obj.kinds:
        raise ValidationError({"kind": f"From a {obj.noun}'s page: "
                                       f"{', '.join(dict(MitigationKind.choices)[k].lower() for k in obj.kinds)}."})
    if incident is None:
        if not declare:
            raise ValidationError({"incident": "Choose an open incident, or declare one."})
        incident = incident_declare(actor=actor, team=obj.team, summary=f"Declared from the page of {obj.label}.",
                                    **({"use_cases": [obj.pk]} if obj.scope == "use_case" else {}), **declare)
    return mitigation_apply(incident=incident, actor=actor, kind=kind, target=obj.target, params=params,
                            reason=reason, expires_in_minutes=expires_in_minutes)


def _describe(mitigation: Mitigation) -> str:
    if mitigation.kind in _kinds:
        return _kinds[mitigation.kind].describe(mitigation)
    if mitigation.kind == MitigationKind.RATE_LIMIT:
        parts = [f"{mitigation.params[f]} {f.replace('_', ' ')}" for f in RATE_FIELDS
                 if mitigation.params.get(f) is not None]
        return f" (limit {', '.join(parts)})"
    return f" (“{mitigation.params.get('message', '')}”)"


def details(mitigation: Mitigation) -> str:
    """How the switch acts, for the pages: "served by support-large", "limit 10 requests per minute", …"""
    return _describe(mitigation).strip().removeprefix("(").removesuffix(")")


def _rate_params(params: dict, key_id: int | None) -> dict:
    clean = {"requests_per_minute": whole("requests_per_minute", params.get("requests_per_minute"), required=True),
             "requests_per_day": whole("requests_per_day", params.get("requests_per_day"), required=False)}
    if key_id is None:
        return clean
    key = GatewayKey.objects.get(pk=key_id)
    before = {f: getattr(key, f) for f in RATE_FIELDS}
    for name in RATE_FIELDS:
        if clean[name] is not None and before[name] is not None and clean[name] >= before[name]:
            raise ValidationError({name: f"A rate limit lowers the key's limit: it is {before[name]} now."})
    return {**clean, "before": before}


@transaction.atomic
def mitigation_undo(*, mitigation: Mitigation, actor, why: str = "") -> Mitigation:
    """Switch it back. Undoing an undone mitigation changes nothing and records nothing."""
    mitigation = Mitigation.objects.select_for_update().select_related("incident").get(pk=mitigation.pk)
    incident = mitigation.incident
    if actor is not None and not rules.may_switch(actor, incident):
        raise PermissionDenied("Only the incident's responders, its commander, engineers of its teams and council "
                               "members undo mitigations.")
    if mitigation.undone_at is not None:
        return mitigation
    note = ""
    if mitigation.kind in _kinds:
        note = _kinds[mitigation.kind].undo(mitigation, actor)
    elif mitigation.kind == MitigationKind.RATE_LIMIT:
        key = GatewayKey.objects.get(pk=mitigation.target["key_id"])
        if key.revoked_at is None:
            gateway_key_update(key=key, actor=None, **{f: mitigation.params["before"].get(f) for f in RATE_FIELDS})
        else:
            note = " The key was revoked meanwhile: nothing to restore."
    mitigation.undone_at, mitigation.undone_by = timezone.now(), user_of(actor)
    mitigation.save(update_fields=["undone_at", "undone_by"])
    if mitigation.kind == MitigationKind.FEATURE_OFF:
        traffic_changed()
    timeline_add(incident, kind=EventKind.MITIGATION_UNDONE, actor=actor,
                 text=f"Undone: {mitigation.get_kind_display()} on {mitigation.target_label}"
                      + (f" ({why})" if why else "") + "." + note,
                 data={"mitigation": mitigation.pk})
    audit_record(action="incident.mitigation_undo", obj=incident, actor=actor,
                 changes={"mitigation": mitigation.pk, "kind": mitigation.kind, "target": mitigation.target,
                          **({"why": why} if why else {}), **({"note": note.strip()} if note else {})})
    mitigation.undo_note = note.strip()  # what the page and the API say besides "undone"
    return mitigation


def mitigations_expiry_sweep(now=None) -> dict:
    """Beat job: restore expired rate limits; remind (once) about features still off past their expiry."""
    now = now or timezone.now()
    expired = list(Mitigation.objects.filter(undone_at__isnull=True, expires_at__lte=now)
                   .select_related("incident", "incident__commander", "applied_by"))
    restored = reminded = 0
    for mitigation in expired:
        if mitigation.kind == MitigationKind.RATE_LIMIT:
            mitigation_undo(mitigation=mitigation, actor=None, why="expired")
            restored += 1
        elif mitigation.reminded_at is None:
            _remind(mitigation, now)
            reminded += 1
    return {"restored": restored, "reminded": reminded}


@transaction.atomic
def _remind(mitigation: Mitigation, now) -> None:
    incident = mitigation.incident
    claimed = Mitigation.objects.filter(pk=mitigation.pk, reminded_at__isnull=True).update(reminded_at=now)
    if not claimed:
        return
    notify(users=[mitigation.applied_by, incident.commander], kind="incident.mitigation",
           title=f"Still switched: {mitigation} ({incident.reference})"[:200],
           body=f"It was meant to last until {mitigation.expires_at:%Y-%m-%d %H:%M} UTC. Undo it on the incident "
                "page, or leave it on if the incident still needs it.",
           link=incident.get_absolute_url(), dedupe_key=f"incident.mitigation:{mitigation.pk}:expired")
    timeline_add(incident, kind=EventKind.SYSTEM, actor=None,
                 text=f"Reminder sent: {mitigation} is past its expiry and still on.",
                 data={"mitigation": mitigation.pk})


def matches(target: dict, admission: AdmissionTarget) -> bool:
    scope = target.get("scope")
    if scope == "key":
        return target.get("key_id") == admission.key_id
    if scope == "feature":
        return target.get("team_id") == admission.team_id and target.get("feature") == admission.feature
    if scope == "use_case":
        return admission.use_case_id is not None and target.get("use_case_id") == admission.use_case_id
    return False


def incidents_guard(admission: AdmissionTarget) -> Refusal | None:
    """The gateway's `incident` admission guard: the message of the first active "feature off" that covers this
    key (and its id, which marks the refused requests), or None. One query on the partial index of active
    mitigations, at most once a second per key."""
    rows = Mitigation.objects.filter(kind=MitigationKind.FEATURE_OFF, undone_at__isnull=True) \
        .order_by("applied_at").values_list("pk", "target", "params", "incident_id")
    for pk, target, params, incident_id in rows:
        if matches(target, admission):
            return Refusal(f"{params.get('message') or DEFAULT_MESSAGE} (incident INC-{incident_id})", switch_id=pk)
    return None


def limit_switch(admission: AdmissionTarget) -> LimitSwitch | None:
    """The gateway's `incident` limit switch: the active rate limit on this key and the limits before it, so the
    refusals it made (and only those) are marked with it."""
    row = Mitigation.objects.filter(kind=MitigationKind.RATE_LIMIT, undone_at__isnull=True,
                                    target__key_id=admission.key_id).values_list("pk", "params").first()
    if row is None:
        return None
    pk, params = row
    return LimitSwitch(pk, {f: params["before"].get(f) for f in RATE_FIELDS if params.get(f) is not None})


def call_covers(scope: CallScope, targets: list[dict]) -> Callable[[dict], bool]:
    """Which of `targets` cover a portal call of `scope` (apps/llm/switches.py): a feature (team + feature name), a
    use case (the call's own, or a prompt or collection linked to it), a prompt (by name). A key covers no portal
    call (the gateway's guard decides for keys). At most two small queries, only for use-case or prompt targets."""
    use_cases = {t.get("use_case_id") for t in targets if t.get("scope") == "use_case"}
    prompts = {t.get("prompt_id") for t in targets if t.get("scope") == "prompt"}
    linked: set[int] = set()
    if use_cases and scope.prompt_name:
        linked |= set(UseCasePrompt.objects.filter(use_case_id__in=use_cases, prompt__name=scope.prompt_name)
                      .values_list("use_case_id", flat=True))
    if use_cases and scope.collection_id:
        linked |= set(UseCaseCollection.objects.filter(use_case_id__in=use_cases, collection_id=scope.collection_id)
                      .values_list("use_case_id", flat=True))
    named = set(Prompt.objects.filter(pk__in=prompts, name=scope.prompt_name).values_list("pk", flat=True)) \
        if prompts and scope.prompt_name else set()

    def covers(target: dict) -> bool:
        kind = target.get("scope")
        if kind == "feature":
            return scope.team_id is not None and (target.get("team_id"), target.get("feature")) == \
                (scope.team_id, scope.feature)
        if kind == "use_case":
            use_case = target.get("use_case_id")
            return use_case in linked or (scope.use_case_id is not None and use_case == scope.use_case_id)
        return kind == "prompt" and target.get("prompt_id") in named

    return covers


def call_switch(scope: CallScope) -> CallSwitch | None:
    """llm's `incident` call switch for feature off: the message of the first active one covering this portal call."""
    rows = list(Mitigation.objects.filter(kind=MitigationKind.FEATURE_OFF, undone_at__isnull=True)
                .order_by("applied_at").values_list("pk", "target", "params", "incident_id"))
    if not rows:
        return None
    covers = call_covers(scope, [target for _, target, _, _ in rows])
    for pk, target, params, incident_id in rows:
        if covers(target):
            return CallSwitch(refuse=f"{params.get('message') or DEFAULT_MESSAGE} (incident INC-{incident_id})",
                              code=GUARD_KEY, switch_id=pk)
    return None


def prompt_guard(target) -> str | None:
    """prompts' `incident` resolve guard: a "feature off" on this prompt, or on a use case it is linked to, refuses
    the catalog's resolve API. (The gateway's prompt references ask llm's call switches first — call_switch below —
    which refuse them with the switch's id, ADR 0122.)"""
    answer = call_switch(CallScope(prompt_name=target.prompt_name))
    return answer.refuse if answer is not None else None
