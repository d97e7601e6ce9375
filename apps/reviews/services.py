"""Writes of the use-case review: intake, submission, tiering, votes and the automatic decision, conditions,
expiry and comments (links to prompts and collections, and their material changes: `linking`). Keyword-only, atomic, one audit event per change; states move only through
`workflow.transition`. Reads and the review's predicates (who must vote, who may vote) are in `selectors`.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import ApiToken, CouncilSeat
from apps.accounts.permissions import Action, council_seats, is_council, require, user_of
from apps.audit.services import audit_record, diff
from apps.reviews import conditions as predicates
from apps.reviews import linking, questionnaire, rules, selectors, workflow
from apps.reviews.models import (
    Comment,
    Condition,
    ConditionCheck,
    ConditionKind,
    ConditionStatus,
    ControlWaiver,
    LifecycleStage,
    ReviewPolicy,
    State,
    Submission,
    TierChange,
    TierChangeStatus,
    UseCase,
    Vote,
    VoteDecision,
)
from apps.reviews.notify import NotificationKind, notify, seat_holders, team_people

HEADER_FIELDS = ("title", "purpose", "intended_uses", "accountable_executive", "lifecycle_stage")


def add_months(moment, months: int):
    """The same day `months` later (the month's last day when it is shorter)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def _lock(use_case: UseCase) -> UseCase:
    return UseCase.objects.select_for_update().get(pk=use_case.pk)


# --- intake ---------------------------------------------------------------------------------------------


def _clean_header(values: dict) -> dict:
    errors, cleaned = {}, {}
    for name in HEADER_FIELDS:
        if name not in values:
            continue
        value = (values[name] or "").strip() if isinstance(values[name], str | type(None)) else values[name]
        if name == "title" and not value:
            errors["title"] = ["Give the use case a title."]
        elif name == "title" and len(value) > 200:
            errors["title"] = ["Keep the title under 200 characters."]
        elif name == "purpose" and not value:
            errors["purpose"] = ["Say what the use case is for."]
        elif name == "lifecycle_stage" and value not in LifecycleStage.values:
            errors["lifecycle_stage"] = [f"Choose one of: {', '.join(LifecycleStage.values)}."]
        elif name == "accountable_executive" and len(value) > 200:
            errors[name] = ["Keep it under 200 characters."]
        else:
            cleaned[name] = value
    if errors:
        raise ValidationError(errors)
    return cleaned


def _clean_intake(header: dict, answers: dict, *, complete: bool, errors: dict | None = None) -> tuple[dict, dict]:
    """The header and the answers checked together, so every problem is reported at once (not header first)."""
    errors = dict(errors or {})
    cleaned_header, cleaned = {}, {}
    try:
        cleaned_header = _clean_header(header)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    try:
        cleaned = questionnaire.clean_answers(selectors.questionnaire_current(), answers, complete=complete)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    return cleaned_header, cleaned


@transaction.atomic
def use_case_create(*, team, actor, title: str, purpose: str, intended_uses: str = "",
                    accountable_executive: str = "", lifecycle_stage: str = LifecycleStage.IDEA,
                    business_owner=None, answers: dict | None = None, submit: bool = False) -> UseCase:
    """A draft. Answers may be partial; they are validated field by field (submit checks completeness).

    `submit=True` creates and submits in one step: incomplete answers raise every error at once and no draft is
    left behind.
    """
    require(actor, Action.CHANGE, team)
    header, cleaned = _clean_intake(
        {"title": title, "purpose": purpose, "intended_uses": intended_uses,
         "accountable_executive": accountable_executive, "lifecycle_stage": lifecycle_stage},
        answers or {}, complete=submit)
    current = selectors.questionnaire_current()
    user = user_of(actor)
    use_case = UseCase.objects.create(team=team, answers=cleaned, questionnaire_version=current.version,
                                      business_owner=business_owner or user, created_by=user, **header)
    audit_record(action="use_case.create", obj=use_case,
                 changes={"title": use_case.title, "team": team.slug, "answers": cleaned},
                 actor=actor)
    if submit:
        use_case = use_case_submit(use_case=use_case, actor=actor)
    return use_case


@transaction.atomic
def use_case_update(*, use_case: UseCase, actor, answers: dict | None = None, submit: bool = False,
                    **header) -> UseCase:
    """Edit the header and answers; `submit=True` also submits, and saves nothing when anything is missing."""
    require(actor, Action.CHANGE, use_case)
    locked = _lock(use_case)
    if locked.state not in workflow.EDITABLE:
        raise ValidationError(f"The answers of a use case that is {locked.state_label.lower()} cannot change; "
                              "they can once the council asks for information or the approval is due.")
    before = {name: getattr(locked, name) for name in HEADER_FIELDS} | {"answers": locked.answers}
    cleaned_header, cleaned = _clean_intake(header, locked.answers if answers is None else answers,
                                            complete=submit)
    for name, value in cleaned_header.items():
        setattr(locked, name, value)
    if answers is not None:
        locked.answers = cleaned
        locked.questionnaire_version = selectors.questionnaire_current().version
    locked.updated_at = timezone.now()
    locked.save()
    after = {name: getattr(locked, name) for name in HEADER_FIELDS} | {"answers": locked.answers}
    audit_record(action="use_case.update", obj=locked, changes=diff(before, after), actor=actor)
    if submit:
        locked = use_case_submit(use_case=locked, actor=actor)
    return locked


@transaction.atomic
def use_case_submit(*, use_case: UseCase, actor) -> UseCase:
    """Freeze the answers as a submission, tier them, route them: prohibited → rejected; else → in review."""
    require(actor, Action.CHANGE, use_case)
    locked = _lock(use_case)
    if not workflow.may(actor, "submit", locked):
        workflow.transition(locked, "submit", actor=actor)  # raises the precise refusal
    current = selectors.questionnaire_current()
    answers = questionnaire.clean_answers(current, locked.answers, complete=True)
    assessment = rules.assess(answers)
    number = locked.submissions.count() + 1
    user = user_of(actor)
    Submission.objects.create(use_case=locked, number=number, answers=answers, questionnaire_version=current.version,
                              tier=assessment.tier, rule_trace=assessment.trace, controls=assessment.controls,
                              submitted_by=user)
    UseCase.objects.filter(pk=locked.pk).update(
        answers=answers, questionnaire_version=current.version, computed_tier=assessment.tier, tier=assessment.tier,
        tier_note="", rule_trace=assessment.trace, required_controls=assessment.controls, review_round=number,
        submitted_at=timezone.now(), decision="", rereview_flag=None)
    locked.refresh_from_db()
    workflow.transition(locked, "submit", actor=actor,
                        changes={"submission": number, "tier": assessment.tier})
    workflow.transition(locked, "triage", actor=None,
                        changes={"matched_rules": [s["id"] for s in assessment.trace if s["matched"]]})
    if assessment.tier == rules.PROHIBITED:
        _decide(locked, "auto_reject", State.REJECTED,
                note="An Article 5 prohibited practice was declared; legal confirms the rejection.")
        notify(recipients=seat_holders([CouncilSeat.LEGAL]), kind=NotificationKind.VOTE_NEEDED,
               subject=f"Confirm rejection: {locked.title}", use_case=locked,
               body="The intake declares a prohibited practice (EU AI Act Art. 5). Please confirm the rejection.")
        return locked
    workflow.transition(locked, "start_review", actor=None, changes={"required_seats": selectors.required_seats(locked)})
    _ask_for_votes(locked)
    return locked


def _ask_for_votes(use_case: UseCase) -> None:
    excluded = workflow.submitter_ids(use_case)
    reviewers = [u for u in seat_holders(selectors.required_seats(use_case)) if u.pk not in excluded]
    notify(recipients=reviewers, kind=NotificationKind.VOTE_NEEDED, use_case=use_case,
           dedupe_key=f"review.vote_needed:{use_case.pk}:round-{use_case.review_round}",
           subject=f"Vote needed: {use_case.title} ({use_case.tier_label} risk)",
           body=f"{use_case.team.name} submitted “{use_case.title}” for review. Seats required: "
                f"{', '.join(selectors.required_seats(use_case))}.")


@transaction.atomic
def rejection_confirm(*, use_case: UseCase, user) -> UseCase:
    """A legal seat confirms the automatic rejection of a prohibited use case (audited, no state change)."""
    if CouncilSeat.LEGAL not in council_seats(user):
        raise PermissionDenied("Only the legal seat confirms a prohibited-practice rejection.")
    locked = _lock(use_case)
    if locked.state != State.REJECTED or locked.tier != rules.PROHIBITED or locked.rejection_confirmed_by_id:
        raise ValidationError("Only an unconfirmed automatic rejection can be confirmed.")
    UseCase.objects.filter(pk=locked.pk).update(rejection_confirmed_by=user, updated_at=timezone.now())
    audit_record(action="use_case.rejection_confirm", obj=locked, changes={"confirmed_by": user.get_username()},
                 user=user)
    locked.refresh_from_db()
    return locked


# --- tier changes --------------------------------------------------------------------------------------------


@transaction.atomic
def tier_change(*, use_case: UseCase, actor, to_tier: str, justification: str = "") -> TierChange:
    """Anyone who may see the use case raises its tier at once; lowering waits for the legal seat."""
    require(actor, Action.VIEW, use_case)
    if isinstance(actor, ApiToken):
        raise PermissionDenied("Tier changes are made by people, in the browser.")
    locked = _lock(use_case)
    if to_tier not in rules.TIER_ORDER:
        raise ValidationError({"to_tier": [f"Choose one of: {', '.join(rules.TIER_ORDER)}."]})
    if not locked.tier:
        raise ValidationError("The tier is set when the use case is submitted.")
    if locked.state in (State.WITHDRAWN, State.RETIRED, State.REJECTED):
        raise ValidationError(f"The tier of a {locked.state_label.lower()} use case no longer changes.")
    if to_tier == locked.tier:
        raise ValidationError({"to_tier": ["That is already the tier."]})
    justification = (justification or "").strip()
    lowering = rules.tier_rank(to_tier) < rules.tier_rank(locked.tier)
    if lowering and not justification:
        raise ValidationError({"justification": ["Lowering a tier needs a written justification."]})
    if lowering and locked.tier_changes.filter(status=TierChangeStatus.PENDING).exists():
        raise ValidationError("A request to lower the tier already awaits legal sign-off.")
    change = TierChange.objects.create(use_case=locked, from_tier=locked.tier, to_tier=to_tier,
                                       justification=justification, requested_by=actor,
                                       status=TierChangeStatus.PENDING if lowering else TierChangeStatus.APPLIED)
    if lowering:
        audit_record(action="use_case.tier_lower_request", obj=locked, user=actor,
                     changes={"tier": [locked.tier, to_tier], "justification": justification})
        notify(recipients=seat_holders([CouncilSeat.LEGAL]), kind=NotificationKind.VOTE_NEEDED, use_case=locked,
               subject=f"Sign-off needed: lower the tier of {locked.title}", body=justification)
        return change
    change.decided_by, change.decided_at = actor, timezone.now()
    change.save(update_fields=["decided_by", "decided_at"])
    _apply_tier(locked, to_tier, f"Raised by {actor.get_username()}: {justification or 'no reason given'}")
    audit_record(action="use_case.tier_raise", obj=locked, user=actor,
                 changes={"tier": [change.from_tier, to_tier], "justification": justification})
    return change


@transaction.atomic
def tier_change_decide(*, change: TierChange, user, approve: bool) -> TierChange:
    if CouncilSeat.LEGAL not in council_seats(user):
        raise PermissionDenied("Only the legal seat signs off a lower tier.")
    change = TierChange.objects.select_for_update().get(pk=change.pk)
    if change.status != TierChangeStatus.PENDING:
        raise ValidationError("This request was already decided.")
    if change.requested_by_id == user.pk:
        raise PermissionDenied("Someone other than the requester signs off a lower tier.")
    locked = _lock(change.use_case)
    change.status = TierChangeStatus.APPLIED if approve else TierChangeStatus.REFUSED
    change.decided_by, change.decided_at = user, timezone.now()
    change.save(update_fields=["status", "decided_by", "decided_at"])
    if approve:
        _apply_tier(locked, change.to_tier, f"Lowered with legal sign-off by {user.get_username()}: "
                                            f"{change.justification}")
    audit_record(action="use_case.tier_lower_" + ("approve" if approve else "refuse"), obj=locked, user=user,
                 changes={"tier": [change.from_tier, change.to_tier], "justification": change.justification})
    return change


def _apply_tier(locked: UseCase, tier: str, note: str) -> None:
    controls = rules.controls_for(tier, locked.rule_trace)
    UseCase.objects.filter(pk=locked.pk).update(tier=tier, tier_note=note, required_controls=controls,
                                                updated_at=timezone.now())
    locked.tier, locked.tier_note, locked.required_controls = tier, note, controls
    if locked.state == State.IN_REVIEW:
        _try_decide(locked)
    elif locked.state in (State.APPROVED, State.CONDITIONS_PENDING):
        _conditions_settle(locked)  # a lower tier may need fewer controls


# --- votes and the decision ------------------------------------------------------------------------------


def _seat_for(user, use_case: UseCase, requested: str | None) -> str:
    seats = council_seats(user)
    taken = set(use_case.votes.filter(round=use_case.review_round).values_list("seat", flat=True))
    if requested:
        if requested not in seats:
            raise ValidationError({"seat": [f"You do not hold the {requested} seat."]})
        if requested in taken:
            raise ValidationError({"seat": [f"The {requested} seat has already voted."]})
        return requested
    required = selectors.required_seats(use_case)
    ordered = sorted(seats, key=lambda s: (s not in required and "any" not in required, s))
    free = [s for s in ordered if s not in taken]
    if not free:
        raise ValidationError("Your seat has already voted on this round.")
    return free[0]


@transaction.atomic
def vote_cast(*, use_case: UseCase, user, decision: str, rationale: str, seat: str | None = None) -> Vote:
    """Record one council vote; when the required votes are in, the system decides (exactly once)."""
    if isinstance(user, ApiToken) or not is_council(user):
        raise PermissionDenied("Only council members vote on use cases.")
    locked = _lock(use_case)  # serialises votes on one use case: the decision is taken once
    if user.pk in workflow.submitter_ids(locked):
        raise PermissionDenied("You submitted this use case, so you do not review it.")
    if locked.state != State.IN_REVIEW:
        raise ValidationError(f"Votes are taken while the use case is in review; it is "
                              f"{locked.state_label.lower()}.")
    if decision not in VoteDecision.values:
        raise ValidationError({"decision": [f"Choose one of: {', '.join(VoteDecision.values)}."]})
    rationale = (rationale or "").strip()
    if not rationale:
        raise ValidationError({"rationale": ["A vote needs a rationale."]})
    if locked.votes.filter(round=locked.review_round, user=user).exists():
        raise ValidationError("You have already voted on this round.")
    chosen = _seat_for(user, locked, seat)
    vote = Vote.objects.create(use_case=locked, round=locked.review_round, seat=chosen, user=user,
                               decision=decision, rationale=rationale)
    audit_record(action="use_case.vote", obj=locked, user=user,
                 changes={"seat": chosen, "decision": decision, "rationale": rationale,
                          "round": locked.review_round})
    _try_decide(locked)
    return vote


def _try_decide(locked: UseCase) -> str | None:
    votes = list(locked.votes.filter(round=locked.review_round))
    outcome = selectors.decision_outcome(locked.tier, selectors.required_seats(locked), votes)
    if outcome is None:
        return None
    target = {VoteDecision.APPROVE: State.APPROVED, VoteDecision.REJECT: State.REJECTED,
              VoteDecision.APPROVE_WITH_CONDITIONS: State.APPROVED_WITH_CONDITIONS}[outcome]
    _decide(locked, outcome, target, note="; ".join(f"{v.seat}: {v.decision}" for v in votes))
    return outcome


def _decide(locked: UseCase, name: str, target: str, note: str) -> None:
    now = timezone.now()
    UseCase.objects.filter(pk=locked.pk).update(decision=target, decided_at=now)
    workflow.transition(locked, name, actor=None, note=note)
    locked.decision, locked.decided_at = target, now
    notify(recipients=team_people(locked), kind=NotificationKind.DECISION, use_case=locked,
           subject=f"Decision: {locked.title} is {State(target).label.lower()}", body=note)
    if target == State.APPROVED:
        _activate(locked)
    elif target == State.APPROVED_WITH_CONDITIONS and locked.conditions.exists():
        workflow.transition(locked, "set_conditions", actor=None)
        _evaluate_automatic(locked)
        _conditions_settle(locked)


def _evaluate_automatic(locked: UseCase) -> None:
    for condition in locked.conditions.filter(kind=ConditionKind.AUTOMATIC):
        condition.use_case = locked
        _condition_evaluate(condition)


def _activate(locked: UseCase) -> bool:
    """Activate, unless a required control is neither evidenced nor waived: then it waits (approved or conditions
    pending) and the page lists what still blocks it."""
    if selectors.activation_blockers(locked):
        return False
    policy = ReviewPolicy.get()
    now = timezone.now()
    expires = add_months(now, policy.months_for(locked.tier))
    UseCase.objects.filter(pk=locked.pk).update(approved_at=now, expires_at=expires, expiry_notice_sent_at=None)
    locked.approved_at, locked.expires_at = now, expires
    linking.remember_reviewed_configs(locked)
    workflow.transition(locked, "activate", actor=None, changes={"expires_at": expires.isoformat()})
    return True


@transaction.atomic
def use_case_transition(*, use_case: UseCase, actor, name: str, note: str = "") -> UseCase:
    """A person's transition from the page (request info, suspend, reinstate, withdraw, retire, …)."""
    if name not in workflow.TRANSITIONS or name == "submit":
        raise ValidationError({"name": [f"Unknown action {name!r}."]})
    locked = _lock(use_case)
    if name == "start_review" and not locked.tier:
        raise ValidationError("Submit the use case first.")
    if name == "set_conditions" and not locked.conditions.exists():
        raise ValidationError("Add at least one condition first.")
    workflow.transition(locked, name, actor=actor, note=note)
    if name == "request_info":
        notify(recipients=team_people(locked), kind=NotificationKind.STATE_CHANGED, use_case=locked,
               subject=f"More information needed: {locked.title}", body=note)
    if name == "set_conditions":
        _evaluate_automatic(locked)
        _conditions_settle(locked)
    if name == "start_review":
        _ask_for_votes(locked)
    return locked


# --- conditions ------------------------------------------------------------------------------------------


def _reviewer_or_admin(actor, use_case: UseCase) -> None:
    if not (workflow.holds(actor, workflow.COUNCIL, use_case) or workflow.holds(actor, workflow.ADMIN, use_case)):
        raise PermissionDenied("Only council members (not the submitter) and admins set and accept conditions.")


@transaction.atomic
def condition_add(*, use_case: UseCase, actor, title: str, owner, due_date: date, how_met: str = "",
                  kind: str = ConditionKind.MANUAL, predicate: str = "", params: dict | None = None,
                  control: str = "") -> Condition:
    _reviewer_or_admin(actor, use_case)
    locked = _lock(use_case)
    if locked.state not in workflow.CONDITION_STATES:
        raise ValidationError(f"Conditions are set during review or on an approved use case, not when it is "
                              f"{locked.state_label.lower()}.")
    errors = {}
    title = (title or "").strip()
    if not title:
        errors["title"] = ["Say what the condition is."]
    if owner is None:
        errors["owner"] = ["Name the person who meets the condition."]
    if not isinstance(due_date, date):
        errors["due_date"] = ["Give a due date."]
    if kind not in ConditionKind.values:
        errors["kind"] = [f"Choose one of: {', '.join(ConditionKind.values)}."]
    if errors:
        raise ValidationError(errors)
    cleaned = {}
    if kind == ConditionKind.AUTOMATIC:
        cleaned = predicates.clean_params(predicate, params or {})  # thresholds locked from here on
    condition = Condition.objects.create(
        use_case=locked, title=title, how_met=(how_met or "").strip(), kind=kind,
        predicate=predicate if kind == ConditionKind.AUTOMATIC else "", params=cleaned, owner=owner,
        due_date=due_date, control=control or "", created_by=actor)
    audit_record(action="use_case.condition_add", obj=locked, user=actor,
                 changes={"condition": condition.pk, "title": title, "kind": kind, "predicate": condition.predicate,
                          "params": cleaned, "owner": owner.get_username(), "due_date": due_date.isoformat()})
    if kind == ConditionKind.AUTOMATIC and locked.state != State.IN_REVIEW:
        _condition_evaluate(condition)
    if locked.state != State.APPROVED_WITH_CONDITIONS:  # there, reviewers add all, then press "Conditions set"
        _conditions_settle(locked)
    return condition


def _condition_evaluate(condition: Condition) -> ConditionCheck:
    result = predicates.evaluate(condition.predicate, condition.use_case, condition.params)
    now = timezone.now()
    check = ConditionCheck.objects.create(condition=condition, value=result.value,
                                          passed=bool(result.passed), detail=result.detail[:500], checked_at=now)
    if result.passed is True:
        status = ConditionStatus.MET
    elif result.passed is False:
        status = ConditionStatus.FAILING
    else:
        status = condition.status  # unknown: keep what we knew
    if status != condition.status:
        audit_record(action="use_case.condition_status", obj=condition.use_case,
                     changes={"condition": condition.pk, "status": [condition.status, status],
                              "value": result.value, "detail": result.detail})
    Condition.objects.filter(pk=condition.pk).update(status=status, last_checked_at=now)
    condition.status, condition.last_checked_at = status, now
    return check


def _conditions_settle(locked: UseCase) -> None:
    """Approved (or conditions pending) with every condition met → active, once each required control is evidenced
    or waived; active with a failing automatic condition → suspended."""
    locked.refresh_from_db(fields=["state"])
    conds = list(locked.conditions.all())
    all_met = all(c.status == ConditionStatus.MET for c in conds)
    if (locked.state == State.CONDITIONS_PENDING and conds and all_met) or (locked.state == State.APPROVED
                                                                             and all_met):
        _activate(locked)
    elif locked.state in workflow.LIVE:
        failing = [c for c in conds if c.kind == ConditionKind.AUTOMATIC and c.status == ConditionStatus.FAILING]
        if failing:
            reasons = "; ".join(f"{c.title}: {c.checks.first().detail if c.checks.exists() else 'failing'}"
                                for c in failing)
            workflow.transition(locked, "suspend", actor=None, note=f"Condition re-check failed — {reasons}")
            owners = [c.owner for c in failing] + team_people(locked)
            notify(recipients=owners, kind=NotificationKind.CONDITION_FAILED, use_case=locked,
                   subject=f"Suspended: {locked.title}", body=f"A condition re-check failed: {reasons}")


@transaction.atomic
def condition_check(*, condition: Condition) -> ConditionCheck | None:
    """Re-check one automatic condition now (beat job, or the 'check now' button) and settle the use case."""
    condition = Condition.objects.select_related("use_case").get(pk=condition.pk)
    if condition.kind != ConditionKind.AUTOMATIC:
        return None
    locked = _lock(condition.use_case)
    condition.use_case = locked
    check = _condition_evaluate(condition)
    _conditions_settle(locked)
    return check


def conditions_recheck_all() -> dict:
    """Re-check the automatic conditions of use cases awaiting or living under them (beat, hourly)."""
    ids = list(Condition.objects.filter(
        kind=ConditionKind.AUTOMATIC,
        use_case__state__in=[State.CONDITIONS_PENDING, State.ACTIVE, State.REVIEW_DUE],
    ).values_list("pk", flat=True))
    counts = {"checked": 0, "failing": 0}
    for pk in ids:
        check = condition_check(condition=Condition(pk=pk))
        if check is not None:
            counts["checked"] += 1
            counts["failing"] += 0 if check.passed else 1
    return counts


@transaction.atomic
def condition_evidence_submit(*, condition: Condition, actor, url: str = "", file=None, note: str = "") -> Condition:
    require(actor, Action.CHANGE, condition.use_case)
    condition = Condition.objects.select_for_update().get(pk=condition.pk)
    if condition.kind != ConditionKind.MANUAL:
        raise ValidationError("The portal checks this condition by itself; it takes no evidence.")
    if condition.status == ConditionStatus.MET:
        raise ValidationError("This condition is already met.")
    url = (url or "").strip()
    if not url and file is None:
        raise ValidationError({"url": ["Upload a file or link to the evidence."]})
    if url and not (url.startswith("/") or url.startswith("https://") or url.startswith("http://")):
        raise ValidationError({"url": ["Link to a portal page (/…) or an http(s) address."]})
    condition.evidence_url, condition.evidence_note = url[:500], (note or "").strip()
    if file is not None:
        condition.evidence_file = file
    condition.status = ConditionStatus.EVIDENCE_SUBMITTED
    condition.save()
    audit_record(action="use_case.condition_evidence", obj=condition.use_case, actor=actor,
                 changes={"condition": condition.pk, "url": url, "file": condition.evidence_file.name or "",
                          "note": condition.evidence_note})
    return condition


@transaction.atomic
def condition_accept(*, condition: Condition, user) -> Condition:
    condition = Condition.objects.select_related("use_case").get(pk=condition.pk)
    _reviewer_or_admin(user, condition.use_case)
    locked = _lock(condition.use_case)
    if condition.kind != ConditionKind.MANUAL or condition.status != ConditionStatus.EVIDENCE_SUBMITTED:
        raise ValidationError("Only submitted evidence of a manual condition can be accepted.")
    now = timezone.now()
    Condition.objects.filter(pk=condition.pk).update(status=ConditionStatus.MET, accepted_by=user, accepted_at=now)
    audit_record(action="use_case.condition_accept", obj=locked, user=user,
                 changes={"condition": condition.pk, "title": condition.title})
    _conditions_settle(locked)
    condition.refresh_from_db()
    return condition


@transaction.atomic
def control_waive(*, use_case: UseCase, user, control: str, reason: str) -> ControlWaiver:
    """A council member (never the submitter, never a token; an admin without a seat neither) waives one required
    control with a written reason; the use case goes active if nothing else blocks it."""
    if isinstance(user, ApiToken) or not workflow.holds(user, workflow.COUNCIL, use_case):
        raise PermissionDenied("Only a council member who did not submit this use case may waive a control.")
    locked = _lock(use_case)
    if locked.state not in workflow.WAIVER_STATES:
        raise ValidationError(f"Controls are waived before activation, not when the use case is "
                              f"{locked.state_label.lower()}.")
    errors = {}
    if control not in (locked.required_controls or []):
        errors["control"] = ["Choose one of the required controls."]
    elif locked.control_waivers.filter(control=control).exists():
        errors["control"] = ["This control is already waived."]
    reason = (reason or "").strip()
    if not reason:
        errors["reason"] = ["Say why the council waives this control."]
    if errors:
        raise ValidationError(errors)
    seats = sorted(council_seats(user))
    waiver = ControlWaiver.objects.create(use_case=locked, control=control, reason=reason, waived_by=user,
                                          seat=seats[0] if seats else "")
    audit_record(action="use_case.control_waive", obj=locked, user=user,
                 changes={"control": control, "reason": reason, "seat": waiver.seat})
    _conditions_settle(locked)
    return waiver


# --- expiry ------------------------------------------------------------------------------------------------


def expiry_sweep(*, now=None) -> dict:
    """Beat, daily: notice + review due `notice_days` before expiry; expired at expiry. Idempotent."""
    now = now or timezone.now()
    policy = ReviewPolicy.get()
    counts = {"review_due": 0, "expired": 0, "condition_due": 0}
    for pk in UseCase.objects.filter(state__in=workflow.LIVE, expires_at__lte=now).values_list("pk", flat=True):
        with transaction.atomic():
            locked = UseCase.objects.select_for_update().get(pk=pk)
            if locked.state in workflow.LIVE and locked.expires_at and locked.expires_at <= now:
                workflow.transition(locked, "expire", actor=None, note="The approval reached its end date.")
                notify(recipients=team_people(locked), kind=NotificationKind.EXPIRY_COMING, use_case=locked,
                       dedupe_key=f"review.expired:{locked.pk}:{locked.expires_at:%Y-%m-%d}",
                       subject=f"Expired: {locked.title}",
                       body="The approval expired; its prompts cannot be promoted or resolved until it is renewed.")
                counts["expired"] += 1
    soon = now + timedelta(days=policy.notice_days)
    for pk in UseCase.objects.filter(state=State.ACTIVE, expires_at__lte=soon).values_list("pk", flat=True):
        with transaction.atomic():
            locked = UseCase.objects.select_for_update().get(pk=pk)
            if locked.state != State.ACTIVE:
                continue
            workflow.transition(locked, "mark_review_due", actor=None,
                                note=f"Expires on {locked.expires_at:%Y-%m-%d}: renew by resubmitting.")
            UseCase.objects.filter(pk=pk).update(expiry_notice_sent_at=now)
            notify(recipients=team_people(locked), kind=NotificationKind.EXPIRY_COMING, use_case=locked,
                   dedupe_key=f"review.review_due:{locked.pk}:{locked.expires_at:%Y-%m-%d}",
                   subject=f"Review due: {locked.title} expires on {locked.expires_at:%Y-%m-%d}",
                   body="Resubmit the intake to renew the approval before it expires.")
            counts["review_due"] += 1
    due = Condition.objects.filter(due_notice_sent_at__isnull=True, due_date__lte=(now + timedelta(days=7)).date(),
                                   use_case__state__in=[State.CONDITIONS_PENDING, *workflow.LIVE]).exclude(
        status=ConditionStatus.MET).select_related("use_case", "owner")
    for condition in due:
        with transaction.atomic():
            notify(recipients=[condition.owner], kind=NotificationKind.CONDITION_DUE, use_case=condition.use_case,
                   dedupe_key=f"review.condition_due:{condition.pk}:{condition.due_date:%Y-%m-%d}",
                   subject=f"Condition due {condition.due_date:%Y-%m-%d}: {condition.title}", body=condition.how_met)
            Condition.objects.filter(pk=condition.pk).update(due_notice_sent_at=now)
            counts["condition_due"] += 1
    return counts


# --- comments ---------------------------------------------------------------------------------------------


@transaction.atomic
def comment_add(*, use_case: UseCase, user, body: str) -> Comment:
    require(user, Action.VIEW, use_case)
    body = (body or "").strip()
    if not body:
        raise ValidationError({"body": ["Write something first."]})
    if len(body) > 5000:
        raise ValidationError({"body": ["Keep comments under 5,000 characters."]})
    comment = Comment.objects.create(use_case=use_case, author=user, body=body)
    audit_record(action="use_case.comment", obj=use_case, user=user, changes={"comment": comment.pk})
    voters = [v.user for v in use_case.votes.select_related("user")]
    others = [p for p in team_people(use_case) + voters if p.pk != user.pk]
    notify(recipients=others, kind=NotificationKind.COMMENT, use_case=use_case,
           subject=f"{user.get_username()} commented on {use_case.title}", body=body[:500])
    return comment
