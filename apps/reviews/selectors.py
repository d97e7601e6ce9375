"""Reads of the use-case review (restricted in SQL to what the actor may see where an actor is given), the
current questionnaire, and the review's predicates: who must vote, who may vote, waive or edit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Exists, OuterRef, Q, QuerySet

from apps.accounts.models import ApiToken, CouncilSeat
from apps.accounts.permissions import Action, council_seats, get_object_for, is_admin, restrict
from apps.evals.selectors import run_list
from apps.prompts.selectors import prompt_list
from apps.rag.selectors import collection_list
from apps.reviews import questionnaire, rules, workflow
from apps.reviews.models import (
    Condition,
    ConditionStatus,
    Control,
    QuestionnaireVersion,
    State,
    Submission,
    TierChange,
    TierChangeStatus,
    UseCase,
    Vote,
    VoteDecision,
)
from apps.reviews.questionnaire import Questionnaire


@dataclass
class UseCaseFilters:
    q: str = ""
    state: str = ""
    tier: str = ""
    team: str = ""


def use_case_list(*, actor, filters: UseCaseFilters | None = None) -> QuerySet[UseCase]:
    filters = filters or UseCaseFilters()
    qs = restrict(UseCase.objects.all(), actor, Action.VIEW).select_related("team", "business_owner")
    if filters.q:
        qs = qs.filter(Q(title__icontains=filters.q) | Q(purpose__icontains=filters.q))
    if filters.state:
        qs = qs.filter(state=filters.state)
    if filters.tier:
        qs = qs.filter(tier=filters.tier)
    if filters.team:
        qs = qs.filter(team__slug=filters.team)
    return qs


def use_case_get(*, actor, pk: int, action: Action | str = Action.VIEW) -> UseCase:
    return get_object_for(actor, UseCase.objects.select_related("team", "business_owner", "created_by"), action, pk=pk)


REVIEW_DAYS = {"low": 5, "elevated": 10, "high": 15}  # votes are due this many days after submission


def vote_due(use_case: UseCase):
    if not use_case.submitted_at:
        return None
    return use_case.submitted_at + timedelta(days=REVIEW_DAYS.get(use_case.tier, 10))


def vote_queue(*, user) -> list[UseCase]:
    """In-review use cases that need this council member's vote, by the date the votes are due."""
    if isinstance(user, ApiToken):
        return []
    seats = council_seats(user)
    if not seats:
        return []
    mine = Vote.objects.filter(use_case=OuterRef("pk"), round=OuterRef("review_round"), user=user)
    candidates = (UseCase.objects.filter(state=State.IN_REVIEW).exclude(Exists(mine))
                  .select_related("team").order_by("submitted_at", "pk"))
    queue = []
    for use_case in candidates:
        required = required_seats(use_case)
        taken = set(use_case.votes.filter(round=use_case.review_round).values_list("seat", flat=True))
        open_seats = [s for s in required if s not in taken]
        needed = ("any" in required and not taken) or bool(seats & set(open_seats))
        if needed and user.pk not in workflow.submitter_ids(use_case):
            use_case.open_seats = open_seats
            use_case.vote_due = vote_due(use_case)
            queue.append(use_case)
    return sorted(queue, key=lambda u: (u.vote_due, u.pk))


def submissions(use_case: UseCase) -> list[Submission]:
    return list(use_case.submissions.select_related("submitted_by").order_by("-number"))


def submission_diff(use_case: UseCase) -> list[dict]:
    """What changed between the last two submissions (labels included), for reviewers."""
    subs = list(use_case.submissions.order_by("-number")[:2])
    if len(subs) < 2:
        return []
    q = questionnaire_by_version(subs[0].questionnaire_version)
    out = []
    for row in questionnaire.answers_diff(subs[1].answers, subs[0].answers):
        question = q.question(row["id"]) or {"label": row["id"]}
        out.append({**row, "label": question["label"]})
    return out


def controls_status(use_case: UseCase) -> list[dict]:
    """Each required control with its status: met (its conditions are all met) / waived (by the council, with a
    reason) / pending (a condition covers it) / not evidenced. Only met and waived controls let it go active."""
    names = dict(Control.objects.values_list("key", "name"))
    by_control: dict[str, list[Condition]] = {}
    for condition in use_case.conditions.all():
        if condition.control:
            by_control.setdefault(condition.control, []).append(condition)
    waivers = {w.control: w for w in use_case.control_waivers.select_related("waived_by")}
    rows = []
    for key in use_case.required_controls or []:
        conds = by_control.get(key, [])
        waiver = waivers.get(key)
        if conds and all(c.status == ConditionStatus.MET for c in conds):
            status = "met"
        elif waiver is not None:
            status = "waived"
        elif conds:
            status = "pending"
        else:
            status = "not evidenced"
        rows.append({"key": key, "name": names.get(key) or rules.CONTROL_LIBRARY.get(key, (key,))[0],
                     "status": status, "conditions": conds, "waiver": waiver,
                     "blocks_activation": status not in CONTROL_CLEARED})
    return rows


CONTROL_CLEARED = ("met", "waived")


def activation_blockers(use_case: UseCase) -> list[dict]:
    """The required controls that still keep the use case from going active (neither evidenced nor waived)."""
    return [row for row in controls_status(use_case) if row["blocks_activation"]]


def linkable_collections(*, user, use_case: UseCase) -> list[tuple[int, str]]:
    """Collections of the use case's team that the user sees and that are not linked yet."""
    linked = use_case.collection_links.values("collection_id")
    return list(collection_list(actor=user).filter(team_id=use_case.team_id).exclude(pk__in=linked)
                .values_list("pk", "name")[:200])


def linkable_prompts(*, user, use_case: UseCase) -> list[tuple[int, str]]:
    """Prompts of the use case's team that the user sees and that are not linked yet."""
    linked = use_case.prompt_links.values("prompt_id")
    return list(prompt_list(actor=user).filter(team_id=use_case.team_id).exclude(pk__in=linked)
                .values_list("pk", "name")[:200])


def eval_runs(*, user, use_case: UseCase, per_prompt: int = 5) -> list:
    """The latest eval runs of the linked prompts (as the user may see them), newest first."""
    runs = []
    for prompt_id in use_case.prompt_links.values_list("prompt_id", flat=True):
        runs.extend(run_list(actor=user, prompt_id=prompt_id).select_related("prompt")[:per_prompt])
    return sorted(runs, key=lambda r: (r.created_at, r.pk), reverse=True)


def pending_tier_changes() -> QuerySet[TierChange]:
    """Requests to lower a tier that await the legal seat's sign-off."""
    return TierChange.objects.filter(status=TierChangeStatus.PENDING).select_related("use_case")


def conditions_due(*, owner) -> QuerySet[Condition]:
    """Conditions this person owns whose due notice went out and that are neither met nor evidenced yet."""
    return (Condition.objects.filter(owner=owner, due_notice_sent_at__isnull=False)
            .filter(status__in=[ConditionStatus.PENDING, ConditionStatus.FAILING]))


# --- the questionnaire --------------------------------------------------------------------------------------


def questionnaire_current() -> Questionnaire:
    """The questionnaire new answers follow: the highest published version, else the bundled v1."""
    row = QuestionnaireVersion.objects.order_by("-version").first()
    return Questionnaire(row.version, row.schema) if row else questionnaire.bundled()


def questionnaire_by_version(version: int) -> Questionnaire:
    """The questionnaire a submission was answered with (the current one when that version is gone)."""
    row = QuestionnaireVersion.objects.filter(version=version).first()
    if row:
        return Questionnaire(row.version, row.schema)
    if questionnaire.has_bundled(version):
        return questionnaire.bundled(version)
    return questionnaire_current()


# --- who decides, who may act: the rules of the review, as predicates -----------------------------------------

VETO_SEATS = (CouncilSeat.SECURITY, CouncilSeat.PRIVACY, CouncilSeat.LEGAL)


def required_seats(use_case: UseCase) -> list[str]:
    """low: any one seat; elevated: security + privacy (+ legal when external); high: all four."""
    tier = use_case.tier
    if tier == rules.LOW:
        return ["any"]
    if tier == rules.ELEVATED:
        seats = [CouncilSeat.SECURITY.value, CouncilSeat.PRIVACY.value]
        if rules.Answers(use_case.answers).external():
            seats.append(CouncilSeat.LEGAL.value)
        return seats
    if tier == rules.HIGH:
        return list(CouncilSeat.values)
    return []


def decision_outcome(tier: str, seats_required: list[str], votes: list[Vote]) -> str | None:
    """The decision the votes make, or None while it is open. A reject from a veto seat decides at once."""
    if any(v.decision == VoteDecision.REJECT and v.seat in VETO_SEATS for v in votes):
        return VoteDecision.REJECT
    voted = {v.seat for v in votes}
    complete = bool(votes) if seats_required == ["any"] else set(seats_required) <= voted
    if not complete:
        return None
    if all(v.decision == VoteDecision.REJECT for v in votes):
        return VoteDecision.REJECT
    if any(v.decision == VoteDecision.APPROVE_WITH_CONDITIONS for v in votes):
        return VoteDecision.APPROVE_WITH_CONDITIONS
    return VoteDecision.APPROVE


def is_editable(use_case: UseCase) -> bool:
    """The team may still change the answers (draft, asked for information, review due, expired)."""
    return use_case.state in workflow.EDITABLE


def may_vote(user, use_case: UseCase) -> bool:
    return (use_case.state == State.IN_REVIEW and workflow.holds(user, workflow.COUNCIL, use_case)
            and not use_case.votes.filter(round=use_case.review_round, user=user).exists())


def may_waive(user, use_case: UseCase) -> bool:
    return use_case.state in workflow.WAIVER_STATES and workflow.holds(user, workflow.COUNCIL, use_case)


def is_reviewer(user, use_case: UseCase) -> bool:
    return workflow.holds(user, workflow.COUNCIL, use_case) or is_admin(user)
