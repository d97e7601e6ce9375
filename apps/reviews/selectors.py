"""Reads of the use-case review, restricted in SQL to what the actor may see."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q, QuerySet

from apps.accounts.models import ApiToken
from apps.accounts.permissions import Action, council_seats, get_object_for, restrict
from apps.reviews import questionnaire, rules
from apps.reviews.models import (
    Condition,
    ConditionStatus,
    Control,
    State,
    Submission,
    UseCase,
    Vote,
)


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
    from datetime import timedelta

    if not use_case.submitted_at:
        return None
    return use_case.submitted_at + timedelta(days=REVIEW_DAYS.get(use_case.tier, 10))


def vote_queue(*, user) -> list[UseCase]:
    """In-review use cases that need this council member's vote, by the date the votes are due."""
    from apps.reviews.services import required_seats
    from apps.reviews.workflow import submitter_ids

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
        if needed and user.pk not in submitter_ids(use_case):
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
    q = questionnaire.by_version(subs[0].questionnaire_version)
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
    from apps.rag.models import Collection

    linked = use_case.collection_links.values("collection_id")
    return list(restrict(Collection.objects.filter(team_id=use_case.team_id), user, Action.VIEW)
                .exclude(pk__in=linked).values_list("pk", "name")[:200])


def eval_runs(*, user, use_case: UseCase, per_prompt: int = 5) -> list:
    """The latest eval runs of the linked prompts (as the user may see them), newest first."""
    try:
        from apps.evals.selectors import run_list
    except ImportError:  # pragma: no cover - evals sits below reviews
        return []
    runs = []
    for prompt_id in use_case.prompt_links.values_list("prompt_id", flat=True):
        runs.extend(run_list(actor=user, prompt_id=prompt_id).select_related("prompt")[:per_prompt])
    return sorted(runs, key=lambda r: (r.created_at, r.pk), reverse=True)
