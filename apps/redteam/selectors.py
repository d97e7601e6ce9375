"""Reads of the red-team app, already restricted to what the actor may see (in SQL)."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from apps.accounts.permissions import Action, can, get_object_for, restrict
from apps.evals.models import Dataset, JudgeLabel
from apps.evals.services import calibration_summary
from apps.redteam import targets
from apps.redteam.library_glue import mcnemar_p
from apps.redteam.models import (
    Attack,
    AttackStatus,
    Campaign,
    CampaignKey,
    CampaignStatus,
    RedTeamPolicy,
    TeamProbe,
)
from apps.reviews import rules
from apps.reviews.models import Condition, ConditionKind, ConditionStatus, UseCase

REDTEAM_CONTROL = "prompt_injection_red_team"
GATED_TIERS = (rules.ELEVATED, rules.HIGH)


def campaign_list(*, actor, prompt_id: int | None = None, status: str = "") -> QuerySet[Campaign]:
    qs = restrict(Campaign.objects.select_related("team", "prompt_version"), actor, Action.VIEW)
    if prompt_id is not None:
        qs = qs.filter(prompt_id=prompt_id)
    if status:
        qs = qs.filter(status=status)
    return qs


def campaign_get(*, actor, pk: int, action: Action | str = Action.VIEW) -> Campaign:
    return get_object_for(actor, Campaign.objects.select_related("team", "prompt_version__prompt", "gateway_key",
                                                                  "judge"), action, pk=pk)


def findings(*, campaign: Campaign, triage: str | None = None) -> QuerySet[Attack]:
    """The successful attacks (findings), in order; `triage` filters ("" = not triaged yet)."""
    qs = Attack.objects.filter(campaign=campaign, success=True).defer("claim_token", "claimed_by")
    if triage is not None:
        qs = qs.filter(triage=triage)
    return qs.order_by("position", "id")


def attacks(*, campaign: Campaign, status: str = "", q: str = "") -> QuerySet[Attack]:
    qs = Attack.objects.filter(campaign=campaign)
    if status == "errors":
        qs = qs.filter(status=AttackStatus.ERROR)
    elif status == "succeeded":
        qs = qs.filter(success=True)
    elif status == "resisted":
        qs = qs.filter(success=False)
    if q:
        qs = qs.filter(Q(probe_id__icontains=q) | Q(category__icontains=q) | Q(strategy__icontains=q))
    return qs.order_by("position", "id")


def indirect_attacks(*, campaign: Campaign) -> QuerySet[Attack]:
    """The attacks that ran against the campaign's collection (ADR 0120), with whether their planted document was
    retrieved and its rank, in order."""
    return (Attack.objects.filter(campaign=campaign, planted_retrieved__isnull=False)
            .only("pk", "probe_id", "strategy", "category", "text", "planted_retrieved", "planted_rank", "success",
                  "status").order_by("position", "id"))


def attack_get(*, campaign: Campaign, pk: int) -> Attack:
    return Attack.objects.get(campaign=campaign, pk=pk)


def policy_for(team_id: int) -> RedTeamPolicy:
    """The team's thresholds, or the defaults (unsaved) when it set none."""
    return RedTeamPolicy.objects.filter(team_id=team_id).first() or RedTeamPolicy(team_id=team_id)


def judge_agreement(judge) -> dict | None:
    """The judge's calibration against human labels (evals' kappa), or None without a judge."""
    if judge is None:
        return None
    return calibration_summary(list(JudgeLabel.objects.filter(evaluator=judge).order_by("id")))


def judge_problem(campaign: Campaign, policy: RedTeamPolicy) -> str:
    """Why a gate may not rely on this campaign's judge ("" when it may, or when there is no judge)."""
    agreement = judge_agreement(campaign.judge)
    if agreement is None:
        return ""
    kappa = agreement["kappa"]
    if kappa is None:
        return (f"The campaign's judge {campaign.judge.name} has no calibration against human labels: a gate "
                f"needs κ ≥ {policy.min_judge_kappa:.2f}.")
    if kappa < policy.min_judge_kappa:
        return (f"The campaign's judge {campaign.judge.name} agrees with human labels at κ = {kappa:.2f}, below "
                f"the stated κ ≥ {policy.min_judge_kappa:.2f}: the gate does not rely on it.")
    return ""


def gated_use_cases(prompt_id: int) -> list[UseCase]:
    """The elevated or high-risk use cases this prompt serves: their production needs a red-team campaign."""
    return list(UseCase.objects.filter(prompt_links__prompt_id=prompt_id, tier__in=GATED_TIERS).order_by("pk"))


def latest_finished(*, prompt_id: int, version_hash: str) -> Campaign | None:
    return (Campaign.objects.filter(prompt_id=prompt_id, version_hash=version_hash, status=CampaignStatus.FINISHED)
            .select_related("judge").order_by("-finished_at", "-pk").first())


def category_breaches(campaign: Campaign, policy: RedTeamPolicy) -> list[dict]:
    """Categories whose ASR upper bound is not below the team's threshold."""
    out = []
    for row in (campaign.summary or {}).get("categories", []):
        limit = policy.threshold(row["name"])
        if row["high"] is not None and row["high"] >= limit:
            out.append({**row, "limit": limit})
    return out


def evidence_conditions(*, actor, campaign: Campaign) -> QuerySet[Condition]:
    """Open manual conditions covering the red-team control, on use cases linked to the campaign's prompt
    that the actor may change."""
    if campaign.prompt_id is None:
        return Condition.objects.none()
    use_cases = restrict(UseCase.objects.filter(prompt_links__prompt_id=campaign.prompt_id), actor, Action.CHANGE)
    return (Condition.objects.filter(use_case__in=use_cases, control=REDTEAM_CONTROL, kind=ConditionKind.MANUAL)
            .exclude(status=ConditionStatus.MET).select_related("use_case"))


def condition_for(*, actor, campaign: Campaign, pk: int) -> Condition | None:
    return evidence_conditions(actor=actor, campaign=campaign).filter(pk=pk).first()


def triage_datasets(*, actor, campaign: Campaign) -> QuerySet[Dataset]:
    """The campaign team's datasets the actor may add items to."""
    return restrict(Dataset.objects.filter(team_id=campaign.team_id), actor, Action.CHANGE).order_by("name")


def team_probes(*, actor) -> QuerySet[TeamProbe]:
    return restrict(TeamProbe.objects.select_related("team"), actor, Action.VIEW)


def compare(a: Campaign, b: Campaign) -> dict:
    """Paired comparison on the attacks both campaigns ran (same key, both scored): counts of each outcome
    pair and the exact McNemar p-value on the discordant ones."""
    left = dict(Attack.objects.filter(campaign=a, status=AttackStatus.DONE).values_list("key", "success"))
    right = dict(Attack.objects.filter(campaign=b, status=AttackStatus.DONE).values_list("key", "success"))
    shared = left.keys() & right.keys()
    both = sum(1 for k in shared if left[k] and right[k])
    only_a = sum(1 for k in shared if left[k] and not right[k])
    only_b = sum(1 for k in shared if right[k] and not left[k])
    n = len(shared)
    p = mcnemar_p(only_a, only_b)
    asr_a = (both + only_a) / n if n else None
    asr_b = (both + only_b) / n if n else None
    if not n:
        verdict = "The campaigns share no scored attack: run the same probes and strategies to compare."
    elif p < 0.05:
        better = "B" if only_a > only_b else "A"
        verdict = f"The difference is real (p = {p:.3g} < 0.05): campaign {better} resists more attacks."
    else:
        verdict = f"No significant difference (p = {p:.3g}): within noise on {n} paired attacks."
    return {"paired": n, "both": both, "only_a": only_a, "only_b": only_b, "neither": n - both - only_a - only_b,
            "asr_a": asr_a, "asr_b": asr_b, "p_value": p, "verdict": verdict}


def trend(*, actor, prompt_id: int) -> list[dict]:
    """Per version of a prompt, its latest finished campaign's overall ASR with the interval, oldest first."""
    rows = (campaign_list(actor=actor, prompt_id=prompt_id, status=CampaignStatus.FINISHED)
            .order_by("prompt_version__number", "-finished_at"))
    latest: dict[int, Campaign] = {}
    for campaign in rows:
        latest.setdefault(campaign.prompt_version_id, campaign)
    out = []
    for campaign in latest.values():
        overall = (campaign.summary or {}).get("overall") or {}
        out.append({"version": campaign.prompt_version.number if campaign.prompt_version else None,
                    "campaign": campaign, "asr": overall.get("asr"), "low": overall.get("low"),
                    "high": overall.get("high"), "total": overall.get("total", 0)})
    return sorted(out, key=lambda r: r["version"] or 0)


def can_change(actor, campaign: Campaign) -> bool:
    return can(actor, Action.CHANGE, campaign)


def team_probe_get(*, actor, pk: int) -> TeamProbe:
    return get_object_for(actor, TeamProbe.objects.select_related("team"), Action.CHANGE, pk=pk)


def policies(*, actor) -> QuerySet[RedTeamPolicy]:
    return restrict(RedTeamPolicy.objects.select_related("team"), actor, Action.VIEW).order_by("team__name")


def multi_turn_driver(campaign: Campaign) -> str:
    """How the campaign's multi_turn attacks are written, in a sentence ("" when it has none): live by an attacker
    model, or the library's planned turns when no real model is configured (targets.attacker_for)."""
    if "multi_turn" not in (campaign.strategies or []):
        return ""
    return targets.attacker_for(campaign.model)[1]


def run_key_ids():
    """The ids of the gateway keys campaigns minted for their runs (ADR 0119), as a subquery."""
    return CampaignKey.objects.values("key_id")
