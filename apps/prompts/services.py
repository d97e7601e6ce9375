"""Writes of the prompt catalog. Each service validates, changes rows in one transaction, records one audit
event per state change (last), and queues side effects (cache stamps, webhooks) with transaction.on_commit.

Who may call what is checked by views and API endpoints (apps.accounts.permissions); the rules that belong
to the domain are enforced here whoever calls: a protected label never moves except through a promotion
request, a token never approves, an author never approves their own version.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from apps.accounts.models import ApiToken, Role, Team
from apps.accounts.permissions import Action, can, is_admin, team_roles, user_of
from apps.audit.services import audit_record
from apps.prompts import notify, registry
from apps.prompts.content import Draft, check_draft
from apps.prompts.gates import gate_context, policy_for
from apps.prompts.models import (
    LATEST,
    PRODUCTION,
    CheckStatus,
    Decision,
    GateCheckResult,
    Label,
    LabelEvent,
    PromotionApproval,
    PromotionKind,
    PromotionRequest,
    PromotionStatus,
    Prompt,
    PromptKind,
    PromptPolicy,
    PromptReference,
    PromptVersion,
    WebhookEvent,
    validate_label_name,
    validate_prompt_name,
)
from apps.prompts.registry import CheckOutcome
from apps.prompts.rendering import include_graph
from apps.prompts.resolve import stamps_bump
from apps.prompts.webhooks import webhooks_emit

MAX_TAGS = 12


# --- actors ----------------------------------------------------------------------------------------------

def _token_of(actor):
    return actor if isinstance(actor, ApiToken) else None


def actor_label(actor) -> str:
    if isinstance(actor, ApiToken):
        return actor.label
    user = user_of(actor)
    return user.get_username() if user else "system"


# --- policy ----------------------------------------------------------------------------------------------

POLICY_FIELDS = ("approvals_required", "not_configured_blocks", "lint_warnings_block", "check_overrides",
                 "protected_labels")


@transaction.atomic
def policy_set(*, team: Team, actor=None, **values) -> PromptPolicy:
    unknown = set(values) - set(POLICY_FIELDS)
    if unknown:
        raise ValidationError({"__all__": f"Unknown policy setting(s): {', '.join(sorted(unknown))}."})
    policy = PromptPolicy.objects.select_for_update().filter(team=team).first() or PromptPolicy(team=team)
    before = {f: getattr(policy, f) for f in POLICY_FIELDS}
    errors = {}
    approvals = values.get("approvals_required", policy.approvals_required)
    if isinstance(approvals, bool) or not isinstance(approvals, int) or not 1 <= approvals <= 10:
        errors["approvals_required"] = "Require from 1 to 10 approvals."
    overrides = values.get("check_overrides", policy.check_overrides) or {}
    if not isinstance(overrides, dict) or not all(isinstance(v, bool) for v in overrides.values()):
        errors["check_overrides"] = "Map each check key to true (blocking) or false (advisory)."
    elif "approvals" in overrides and overrides["approvals"] is False:
        errors["check_overrides"] = "Approvals always block: they are the point of a promotion request."
    protected = values.get("protected_labels", policy.protected_labels) or []
    for label in protected:
        try:
            validate_label_name(label)
        except ValidationError:
            errors["protected_labels"] = f"{label!r} is not a valid label name."
        if label == LATEST:
            errors["protected_labels"] = "'latest' moves by itself with each new version; it cannot be protected."
    if errors:
        raise ValidationError(errors)
    for field_name, value in values.items():
        setattr(policy, field_name, value)
    policy.protected_labels = sorted(set(protected) - {PRODUCTION})
    policy.check_overrides = overrides
    policy.updated_at = timezone.now()
    policy.save()
    after = {f: getattr(policy, f) for f in POLICY_FIELDS}
    audit_record(action="prompt.policy.set", obj=team, object_type="prompts.promptpolicy", object_id=policy.pk,
                 object_repr=f"prompt policy of {team.name}",
                 changes={k: [before[k], after[k]] for k in POLICY_FIELDS if before[k] != after[k]}, actor=actor)
    return policy


# --- prompts and versions ----------------------------------------------------------------------------------

def _clean_tags(tags) -> list[str]:
    if isinstance(tags, str):
        tags = tags.split(",")
    cleaned = []
    for tag in tags or []:
        tag = str(tag).strip().lower()
        if tag and tag not in cleaned:
            cleaned.append(tag[:40])
    if len(cleaned) > MAX_TAGS:
        raise ValidationError({"tags": f"Use at most {MAX_TAGS} tags."})
    return cleaned


def refresh_search_vector(prompt_id: int, text: str) -> None:
    """name (A, split on / - _ .), description and tags (B), the latest template text (C)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE prompts_prompt SET search_vector =
                setweight(to_tsvector('simple', name || ' ' || translate(name, '/-_.', '    ')), 'A')
                || setweight(to_tsvector('english', description || ' ' || array_to_string(tags, ' ')), 'B')
                || setweight(to_tsvector('english', %s), 'C')
            WHERE id = %s
            """,
            [text[:200_000], prompt_id],
        )


@dataclass
class VersionResult:
    version: PromptVersion
    created: bool

    @property
    def message(self) -> str:
        if self.created:
            return f"Saved version {self.version.number}."
        return (f"Nothing changed: the content is identical to version {self.version.number}, "
                "so no new version was made.")


@transaction.atomic
def prompt_create(*, team: Team, name: str, kind: str = PromptKind.TEXT, description: str = "", tags=(),
                  actor=None, draft: Draft | None = None, commit_message: str = "") -> Prompt:
    """A new prompt, with its first version when `draft` is given (one event for both)."""
    name = (name or "").strip()
    errors = {}
    try:
        validate_prompt_name(name)
    except ValidationError as exc:
        errors["name"] = exc.messages
    if kind not in PromptKind.values:
        errors["kind"] = f"Choose text or chat, not {kind!r}."
    try:
        tags = _clean_tags(tags)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if not errors and Prompt.objects.filter(name=name).exists():
        errors["name"] = f"A prompt named {name!r} already exists."
    checked = None
    if draft is not None and not errors:
        draft.kind = kind
        try:
            checked = check_draft(draft, f"{name} v1")
            _check_references(checked.references, name=name, actor=actor)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    user = user_of(actor)
    try:
        with transaction.atomic():
            prompt = Prompt.objects.create(team=team, name=name, kind=kind, description=description or "",
                                           tags=tags, created_by=user, updated_by_label=actor_label(actor))
    except IntegrityError:
        raise ValidationError({"name": f"A prompt named {name!r} already exists."})
    changes = {"name": name, "kind": kind, "team": team.slug, "tags": tags}
    text = ""
    if checked is not None:
        version = _version_insert(prompt, checked, commit_message, actor)
        changes["version"] = version.number
        changes["content_hash"] = version.content_hash
        text = version.text_for_search
    refresh_search_vector(prompt.pk, text)
    audit_record(action="prompt.create", obj=prompt, changes=changes, actor=actor)
    return prompt


@transaction.atomic
def prompt_update(*, prompt: Prompt, description: str | None = None, tags=None, actor=None) -> Prompt:
    prompt = Prompt.objects.select_for_update().get(pk=prompt.pk)
    before = {"description": prompt.description, "tags": list(prompt.tags)}
    if description is not None:
        prompt.description = description
    if tags is not None:
        prompt.tags = _clean_tags(tags)
    after = {"description": prompt.description, "tags": list(prompt.tags)}
    if before == after:
        return prompt
    prompt.updated_at = timezone.now()
    prompt.updated_by_label = actor_label(actor)
    prompt.save(update_fields=["description", "tags", "updated_at", "updated_by_label"])
    latest = prompt.versions.order_by("-number").first()
    refresh_search_vector(prompt.pk, latest.text_for_search if latest else "")
    audit_record(action="prompt.update", obj=prompt,
                 changes={k: [before[k], after[k]] for k in before if before[k] != after[k]}, actor=actor)
    return prompt


def _check_references(references, *, name: str, actor) -> None:
    """Every included prompt must exist, be a text prompt and be visible to the author."""
    problems = []
    for ref in references:
        if ref.name == name:
            problems.append(f"include_prompt {ref.name!r}: a prompt cannot include itself.")
            continue
        target = Prompt.objects.filter(name=ref.name).first()
        if target is None:
            problems.append(f"include_prompt {ref.name!r}: there is no prompt with that name.")
        elif target.kind != PromptKind.TEXT:
            problems.append(f"include_prompt {ref.name!r}: only text prompts can be included; it is a chat prompt.")
        elif actor is not None and not can(actor, Action.VIEW, target):
            problems.append(f"include_prompt {ref.name!r}: you may not view that prompt.")
    if problems:
        raise ValidationError({"template": problems})


def _version_insert(prompt: Prompt, checked, commit_message: str, actor) -> PromptVersion:
    draft = checked.draft
    number = (prompt.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    version = PromptVersion(
        prompt=prompt, number=number,
        template=draft.template if prompt.kind == PromptKind.TEXT else "",
        messages=draft.messages if prompt.kind == PromptKind.CHAT else [],
        variables=checked.variables, variables_schema=draft.variables_schema, config=draft.config,
        commit_message=(commit_message or "").strip()[:500], author=user_of(actor), author_token=_token_of(actor),
        author_label=actor_label(actor), content_hash=draft.content_hash(),
    )
    version.save()
    by_name = {p.name: p for p in Prompt.objects.filter(name__in=[r.name for r in checked.references])}
    PromptReference.objects.bulk_create([
        PromptReference(from_version=version, to_prompt=by_name[r.name],
                        label="" if r.version is not None else r.effective_label, version_number=r.version)
        for r in checked.references if r.name in by_name
    ])
    # The include graph as labels point now must not loop back to this prompt.
    graph = include_graph(version, checked.references)
    cycles = [p.message for p in graph.problems if "cycle" in p.message]
    if cycles:
        raise ValidationError({"template": cycles})
    previous = _move_label(prompt, LATEST, version, actor, reason=f"version {number} created")
    prompt.latest_version_number = number
    prompt.updated_at = version.created_at
    prompt.updated_by_label = version.author_label
    prompt.save(update_fields=["latest_version_number", "updated_at", "updated_by_label"])
    webhooks_emit(team_id=prompt.team_id, event=WebhookEvent.VERSION_CREATED, payload={
        "event": WebhookEvent.VERSION_CREATED, "prompt": prompt.name, "version": number,
        "content_hash": version.content_hash, "author": version.author_label,
        "commit_message": version.commit_message, "occurred_at": version.created_at.isoformat(),
        "previous_latest": previous.number if previous else None,
    })
    return version


@transaction.atomic
def version_create(*, prompt: Prompt, draft: Draft, commit_message: str = "", actor=None) -> VersionResult:
    """A new immutable version, or the existing one when the content is identical (and no event)."""
    prompt = Prompt.objects.select_for_update().get(pk=prompt.pk)  # one version number at a time
    draft.kind = prompt.kind
    checked = check_draft(draft, f"{prompt.name} v{prompt.latest_version_number + 1}")
    _check_references(checked.references, name=prompt.name, actor=actor)
    existing = prompt.versions.filter(content_hash=draft.content_hash()).first()
    if existing is not None:
        return VersionResult(existing, created=False)
    previous = prompt.versions.order_by("-number").first()
    version = _version_insert(prompt, checked, commit_message, actor)
    refresh_search_vector(prompt.pk, version.text_for_search)
    audit_record(action="prompt.version.create", obj=prompt, object_repr=str(version),
                 changes={"version": version.number, "content_hash": version.content_hash,
                          "commit_message": version.commit_message,
                          "latest": [previous.number if previous else None, version.number]},
                 actor=actor)
    return VersionResult(version, created=True)


# --- labels ----------------------------------------------------------------------------------------------

def _move_label(prompt: Prompt, label: str, version: PromptVersion, actor, *, reason: str = "",
                promotion: PromotionRequest | None = None) -> PromptVersion | None:
    """Point `label` at `version`, keep the history row, refresh caches and tell webhooks. Returns the old one."""
    current = Label.objects.select_for_update().filter(prompt=prompt, name=label).select_related("version").first()
    previous = current.version if current else None
    if previous is not None and previous.pk == version.pk:
        return previous
    now = timezone.now()
    by = actor_label(actor)
    if current is None:
        Label.objects.create(prompt=prompt, name=label, version=version, updated_at=now, updated_by_label=by)
    else:
        current.version = version
        current.updated_at = now
        current.updated_by_label = by
        current.save(update_fields=["version", "updated_at", "updated_by_label"])
    LabelEvent.objects.create(prompt=prompt, label=label, from_version=previous, to_version=version,
                              actor=user_of(actor), actor_token=_token_of(actor), actor_label=by,
                              reason=reason or "", promotion=promotion, occurred_at=now)
    prompt_id = prompt.pk
    transaction.on_commit(lambda: stamps_bump({prompt_id}))
    if label == LATEST:
        return previous  # "version.created" already tells receivers
    Prompt.objects.filter(pk=prompt.pk).update(updated_at=now, updated_by_label=by)
    webhooks_emit(team_id=prompt.team_id, event=WebhookEvent.LABEL_MOVED, payload={
        "event": WebhookEvent.LABEL_MOVED, "prompt": prompt.name, "label": label,
        "from_version": previous.number if previous else None, "to_version": version.number,
        "content_hash": version.content_hash, "actor": by, "reason": reason or "",
        "promotion_request": promotion.pk if promotion else None, "occurred_at": now.isoformat(),
    })
    return previous


def is_protected(prompt: Prompt, label: str) -> bool:
    return label == PRODUCTION or policy_for(prompt.team_id).is_protected(label)


@transaction.atomic
def label_set(*, prompt: Prompt, label: str, version: PromptVersion, actor=None, reason: str = "") -> Label:
    """Move an unprotected label. `production` (and the team's protected labels) refuse: open a request."""
    label = (label or "").strip().lower()
    try:
        validate_label_name(label)
    except ValidationError as exc:
        raise ValidationError({"label": exc.messages})
    if label == LATEST:
        raise ValidationError({"label": "'latest' moves by itself to each new version."})
    if is_protected(prompt, label):
        raise PermissionDenied(f"'{label}' is protected: it moves only through a promotion request.")
    if version.prompt_id != prompt.pk:
        raise ValidationError({"version": f"Version {version.number} is not a version of {prompt.name}."})
    previous = _move_label(prompt, label, version, actor, reason=reason)
    result = Label.objects.get(prompt=prompt, name=label)
    if previous is None or previous.pk != version.pk:
        audit_record(action="prompt.label.move", obj=prompt,
                     changes={"label": label, "version": [previous.number if previous else None, version.number],
                              "reason": reason}, actor=actor)
    return result


# --- promotion requests ------------------------------------------------------------------------------------

def _current_version(prompt: Prompt, label: str) -> PromptVersion | None:
    found = Label.objects.filter(prompt=prompt, name=label).select_related("version").first()
    return found.version if found else None


def _move_checked(prompt: Prompt, version: PromptVersion, label: str) -> tuple[PromptVersion | None, str]:
    """(the version `label` points at now, promotion or rollback) for a request to move it to `version`, or
    ValidationError: another prompt's version, no move at all, or a request for the label still open."""
    if version.prompt_id != prompt.pk:
        raise ValidationError({"version": f"Version {version.number} is not a version of {prompt.name}."})
    current = _current_version(prompt, label)
    if current is not None and current.pk == version.pk:
        raise ValidationError({"version": f"{label} already points at version {version.number}."})
    open_request = prompt.promotion_requests.filter(label=label, status=PromotionStatus.OPEN).first()
    if open_request is not None:
        raise ValidationError({"version": f"Request #{open_request.pk} to move {label} to version "
                                          f"{open_request.to_version.number} is still open: close it first."})
    kind = PromotionKind.ROLLBACK if current is not None and version.number < current.number \
        else PromotionKind.PROMOTION
    return current, kind


@transaction.atomic
def promotion_request_open(*, prompt: Prompt, version: PromptVersion, actor=None, reason: str = "",
                           label: str = PRODUCTION) -> PromotionRequest:
    """Ask to move a protected label to `version` (a rollback when it is older than the current one)."""
    prompt = Prompt.objects.select_for_update().get(pk=prompt.pk)
    if not is_protected(prompt, label):
        raise ValidationError({"label": f"'{label}' is not protected: set it directly, no request needed."})
    current, kind = _move_checked(prompt, version, label)
    request = PromotionRequest.objects.create(
        prompt=prompt, label=label, from_version=current, to_version=version, kind=kind, reason=reason or "",
        requested_by=user_of(actor), requested_by_token=_token_of(actor), requester_label=actor_label(actor),
    )
    results = _run_checks(request)
    audit_record(action=f"prompt.{kind}.open", obj=prompt, object_repr=f"{prompt.name} {label} request #{request.pk}",
                 changes={"request": request.pk, "label": label,
                          "version": [current.number if current else None, version.number],
                          "reason": reason, "checks": {r.key: r.status for r in results}}, actor=actor)
    notify.promotion_opened(request)
    return request


def _blocking(check: registry.GateCheck, outcome: CheckOutcome, policy: PromptPolicy) -> bool:
    blocking = policy.check_overrides.get(check.key, check.blocking_default) if policy.check_overrides \
        else check.blocking_default
    if check.key == "approvals":
        blocking = True
    if outcome.status == CheckStatus.NOT_CONFIGURED:
        return bool(blocking and policy.not_configured_blocks)
    return bool(blocking)


def _run_checks(request: PromotionRequest) -> list[GateCheckResult]:
    """Run every registered check now and store each result with its time. A check that raises blocks."""
    ctx = gate_context(request)
    run = (request.check_results.aggregate(n=Max("run"))["n"] or 0) + 1
    results = []
    for check in registry.gate_checks():
        try:
            outcome = check.fn(ctx)
            if not isinstance(outcome, CheckOutcome) or outcome.status not in CheckStatus.values:
                raise TypeError(f"the check returned {outcome!r}, not a CheckOutcome")
        except Exception as exc:  # noqa: BLE001 - a broken check must block, not crash the request
            outcome = CheckOutcome(CheckStatus.ERROR, f"The check failed to run: {type(exc).__name__}: {exc}"[:500])
        blocking = True if outcome.status == CheckStatus.ERROR else _blocking(check, outcome, ctx.policy)
        results.append(GateCheckResult(request=request, run=run, key=check.key, label=check.label,
                                       status=outcome.status, blocking=blocking, summary=outcome.summary,
                                       details=outcome.details or {}))
    GateCheckResult.objects.bulk_create(results)
    return results


def blocking_failures(results: list[GateCheckResult]) -> list[GateCheckResult]:
    return [r for r in results if r.blocks]


def _lock_open(request: PromotionRequest) -> PromotionRequest:
    request = PromotionRequest.objects.select_for_update(of=("self",)).select_related("prompt", "to_version", "from_version") \
        .get(pk=request.pk)
    if request.status != PromotionStatus.OPEN:
        raise ValidationError({"__all__": f"Request #{request.pk} is {request.get_status_display().lower()}: "
                                          "nothing more can be done with it."})
    return request


def _apply(request: PromotionRequest, actor, *, expedited: bool = False) -> PromptVersion | None:
    """Move the label (the last state change of the calling service; its event is written by the caller)."""
    prompt = request.prompt
    reason = f"promotion request #{request.pk}" + (f": {request.reason}" if request.reason else "")
    if expedited:
        reason = f"expedited request #{request.pk}: {request.expedite_reason}"
    previous = _move_label(prompt, request.label, request.to_version, actor, reason=reason, promotion=request)
    request.status = PromotionStatus.APPLIED
    request.closed_at = timezone.now()
    request.closed_by_label = actor_label(actor)
    request.save(update_fields=["status", "closed_at", "closed_by_label", "expedited", "expedite_reason"])
    return previous


def _audit_label_move(request: PromotionRequest, previous: PromptVersion | None, actor, how: str) -> None:
    audit_record(action="prompt.label.move", obj=request.prompt,
                 changes={"label": request.label,
                          "version": [previous.number if previous else None, request.to_version.number],
                          "request": request.pk, "kind": request.kind, "via": how}, actor=actor)


def may_approve(actor, request: PromotionRequest) -> tuple[bool, str]:
    """(allowed, why not): an engineer or owner of the owning team, not the author, not the requester."""
    if isinstance(actor, ApiToken) or not getattr(actor, "is_authenticated", False):
        return False, "API tokens cannot approve promotion requests: a person must."
    role = team_roles(actor).get(request.prompt.team_id)
    if role not in (Role.ENGINEER, Role.OWNER):
        return False, "Only engineers and owners of the team that owns the prompt may approve."
    if request.to_version.author_id == actor.pk:
        return False, "You wrote this version: someone else must approve it."
    if request.requested_by_id == actor.pk:
        return False, "You opened this request: someone else must approve it."
    return True, ""


@dataclass
class Outcome:
    request: PromotionRequest
    applied: bool
    results: list[GateCheckResult]

    @property
    def waiting_on(self) -> list[str]:
        return [r.label for r in blocking_failures(self.results)]


@transaction.atomic
def promotion_request_approve(*, request: PromotionRequest, user, comment: str = "") -> Outcome:
    """Record an approval, re-run the checks, and move the label if every blocking check passes."""
    request = _lock_open(request)
    allowed, why = may_approve(user, request)
    if not allowed:
        raise PermissionDenied(why)
    if request.approvals.filter(user=user).exists():
        raise ValidationError({"__all__": "You already decided on this request."})
    PromotionApproval.objects.create(request=request, user=user, decision=Decision.APPROVE, comment=comment or "")
    results = _run_checks(request)
    blocked = blocking_failures(results)
    audit_record(action="prompt.promotion.approve", obj=request.prompt,
                 object_repr=f"{request.prompt.name} request #{request.pk}",
                 changes={"request": request.pk, "comment": comment, "checks": {r.key: r.status for r in results},
                          "waiting_on": [r.key for r in blocked]}, actor=user)
    if blocked:
        notify.promotion_approved(request, user=user, comment=comment, applied=False,
                                  waiting_on=[r.label for r in blocked])
        return Outcome(request, False, results)
    previous = _apply(request, user)
    _audit_label_move(request, previous, user, "approved")
    notify.promotion_approved(request, user=user, comment=comment, applied=True, waiting_on=[])
    return Outcome(request, True, results)


@transaction.atomic
def promotion_request_recheck(*, request: PromotionRequest, user) -> Outcome:
    """Run the checks again (e.g. after the eval gate or the use case changed); apply if all pass."""
    request = _lock_open(request)
    if isinstance(user, ApiToken):
        raise PermissionDenied("API tokens cannot move a protected label.")
    results = _run_checks(request)
    blocked = blocking_failures(results)
    if blocked:
        return Outcome(request, False, results)  # checks are stored; nothing changed state-wise
    previous = _apply(request, user)
    _audit_label_move(request, previous, user, "all checks passed on re-check")
    notify.promotion_applied(request, actor=user, how="every check passed on re-check")
    return Outcome(request, True, results)


@transaction.atomic
def promotion_request_reject(*, request: PromotionRequest, user, comment: str) -> PromotionRequest:
    request = _lock_open(request)
    allowed, why = may_approve(user, request)
    if not allowed and not is_admin(user):
        raise PermissionDenied(why.replace("approve", "reject"))
    if not (comment or "").strip():
        raise ValidationError({"comment": "Say why you reject it: the author needs to know what to change."})
    PromotionApproval.objects.create(request=request, user=user, decision=Decision.REJECT, comment=comment.strip())
    request.status = PromotionStatus.REJECTED
    request.closed_at = timezone.now()
    request.closed_by_label = actor_label(user)
    request.close_comment = comment.strip()
    request.save(update_fields=["status", "closed_at", "closed_by_label", "close_comment"])
    audit_record(action="prompt.promotion.reject", obj=request.prompt,
                 object_repr=f"{request.prompt.name} request #{request.pk}",
                 changes={"request": request.pk, "comment": comment.strip()}, actor=user)
    notify.promotion_rejected(request, user=user, comment=comment.strip())
    return request


def may_cancel(actor, request: PromotionRequest) -> bool:
    user = user_of(actor)
    if isinstance(actor, ApiToken):
        return request.requested_by_token_id == actor.pk
    return bool(user and (request.requested_by_id == user.pk or can(user, Action.MANAGE, request.prompt)))


@transaction.atomic
def promotion_request_cancel(*, request: PromotionRequest, actor, comment: str = "") -> PromotionRequest:
    request = _lock_open(request)
    if not may_cancel(actor, request):
        raise PermissionDenied("Only the requester or an owner of the team may cancel this request.")
    request.status = PromotionStatus.CANCELLED
    request.closed_at = timezone.now()
    request.closed_by_label = actor_label(actor)
    request.close_comment = (comment or "").strip()
    request.save(update_fields=["status", "closed_at", "closed_by_label", "close_comment"])
    audit_record(action="prompt.promotion.cancel", obj=request.prompt,
                 object_repr=f"{request.prompt.name} request #{request.pk}",
                 changes={"request": request.pk, "comment": request.close_comment}, actor=actor)
    notify.promotion_cancelled(request, actor=actor, comment=request.close_comment)
    return request


EXPEDITE_MIN_REASON = 20


@transaction.atomic
def promotion_request_expedite(*, request: PromotionRequest, user, reason: str) -> Outcome:
    """An admin moves the label now, whatever the checks say, with a written reason. Checks are still stored."""
    request = _lock_open(request)
    if not is_admin(user):
        raise PermissionDenied("Only an admin may expedite a promotion request.")
    reason = (reason or "").strip()
    if len(reason) < EXPEDITE_MIN_REASON:
        raise ValidationError({"reason": f"Write why this cannot wait for the gates (at least {EXPEDITE_MIN_REASON} "
                                         "characters): it is kept in the audit log."})
    results = _run_checks(request)
    request.expedited = True
    request.expedite_reason = reason
    previous = _apply(request, user, expedited=True)
    audit_record(action="prompt.promotion.expedite", obj=request.prompt,
                 changes={"request": request.pk, "label": request.label, "reason": reason,
                          "version": [previous.number if previous else None, request.to_version.number],
                          "overridden": [r.key for r in blocking_failures(results)]}, actor=user)
    notify.promotion_applied(request, actor=user, how=f"expedited by {user.get_username()}")
    return Outcome(request, True, results)


# --- a label moved now, for an incident ---------------------------------------------------------------------

@dataclass(frozen=True)
class LabelMoveNow:
    previous: PromptVersion | None
    request: PromotionRequest  # applied at once; its gate check results are stored (noted, not blocking)
    overridden: list[str]  # the keys of the checks that would have blocked


@transaction.atomic
def label_move_now(*, prompt: Prompt, version: PromptVersion, actor=None, reason: str,
                   label: str = PRODUCTION) -> LabelMoveNow:
    """Move a label (production by default) to `version` now, the way an expedited request does but for the
    caller's own rule (incidents: a prompt rollback; the caller decides who may): the gate checks run and are
    stored on an applied request (a rollback when `version` is older), one `prompt.label.move` audit event
    (`via: "now"`), the requester's notice, the caches' stamp and webhooks as for any move. Refused while a
    request for the same label is open (close it first: it would move the label again when approved)."""
    prompt = Prompt.objects.select_for_update().get(pk=prompt.pk)
    current, kind = _move_checked(prompt, version, label)
    request = PromotionRequest.objects.create(
        prompt=prompt, label=label, from_version=current, to_version=version, kind=kind, reason=reason,
        requested_by=user_of(actor), requested_by_token=_token_of(actor), requester_label=actor_label(actor),
        status=PromotionStatus.APPLIED, expedited=True, expedite_reason=reason)
    overridden = [r.key for r in blocking_failures(_run_checks(request))]
    previous = _apply(request, actor, expedited=True)
    _audit_label_move(request, previous, actor, "now")
    return LabelMoveNow(previous, request, overridden)
