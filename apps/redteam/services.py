"""Writes of the red-team app: campaigns (launch, cancel, resume), team probes (by hand, JSONL import), findings
triage and the dataset item a "to fix" becomes, the team's gate thresholds, and a campaign as evidence of a
use case's red-team control. One audit event per state change; tasks are queued after the commit."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from apps.accounts.permissions import Action, can, require, user_of
from apps.audit.services import audit_record
from apps.core.safe_input import text_problem
from apps.core.tasks import task_queue
from apps.evals.datasets import dataset_items_add
from apps.evals.models import ItemSource
from apps.evals.targets import TargetError, render_prepared
from apps.llm.calls import resolve_model
from apps.llm.errors import LlmError
from apps.llm.models import ModelKind
from apps.redteam import library_glue, planting
from apps.redteam.front_door import refresh_spend
from apps.redteam.models import (
    ACTIVE_STATUSES,
    Attack,
    AttackStatus,
    Campaign,
    CampaignStatus,
    RedTeamPolicy,
    TargetKind,
    TeamProbe,
    Triage,
)
from apps.redteam.runner import campaign_attacks, reclaim_dead, run_keys_sweep, stalled_campaigns
from apps.redteam.targets import prepared_prompt
from apps.reviews.services import condition_evidence_submit

log = logging.getLogger(__name__)
RUN_TASK = "apps.redteam.tasks.campaign_run_task"
REDTEAM_CONTROL = "prompt_injection_red_team"
SPEND_READ_BACK = timedelta(minutes=10)  # the gateway's recorder is seconds behind; this is generous


def _queue_run(campaign_id: int) -> None:
    try:
        task_queue(RUN_TASK, campaign_id)
    except Exception:  # noqa: BLE001 - a broker outage leaves it queued: the beat job starts it later
        log.exception("could not queue red-team campaign %s", campaign_id)


# --- campaigns ------------------------------------------------------------------------------------------------

def _check_model(name: str, errors: dict) -> None:
    try:
        resolve_model(name, ModelKind.CHAT)
    except (LlmError, ValidationError, LookupError) as exc:
        errors["model"] = f"Unknown chat model {name!r}: {exc}"


def _check_render(version, variables: dict, attack_variable: str, errors: dict) -> None:
    """Render the version once with a sample attack (no model call): a campaign that cannot render is refused."""
    prepared = prepared_prompt(version)
    sample = dict(variables)
    if attack_variable:
        sample[attack_variable] = "sample attack"
    try:
        render_prepared(prepared, sample)
    except TargetError as exc:
        errors["variables"] = f"The version cannot be rendered with these variables: {exc}"


@transaction.atomic
def campaign_create(*, actor, name: str, model: str, strategies: list[str], library_version: str = "",
                    include_team_probes: bool = True, prompt_version=None, variables: dict | None = None,
                    attack_variable: str = "", gateway_key=None, system_prompt: str = "",
                    evaluators=(), judge=None, concurrency: int | None = None, seed: int | None = None,
                    rag_collection=None, start: bool = True) -> Campaign:
    """Launch a campaign on a prompt version (or a gateway key) with a model; queued on the `llm` workers.
    `rag_collection`: a collection the actor may read; attacks that plant a document run against it (ADR 0120)."""
    errors: dict[str, str] = {}
    name = (name or "").strip()
    if not name or len(name) > 200 or text_problem(name):
        errors["name"] = "Name the campaign (at most 200 characters)."
    if (prompt_version is None) == (gateway_key is None):
        errors["target"] = "Choose one target: a prompt version, or a gateway key and its alias."
    team = prompt_version.prompt.team if prompt_version is not None else getattr(gateway_key, "team", None)
    if team is not None:
        require(actor, Action.CHANGE, team)
    model = (model or "").strip()
    if not model:
        errors["model"] = "Choose the model to attack."
    else:
        _check_model(model, errors)
    if gateway_key is not None and not gateway_key.is_active:
        errors["target"] = f"Key {gateway_key.name} is {gateway_key.state()}: a campaign needs an active key."
    if gateway_key is not None and model and gateway_key.allowed_aliases and model not in gateway_key.allowed_aliases:
        errors["model"] = f"Key {gateway_key.name} may not call {model!r}; it allows: " \
                          f"{', '.join(gateway_key.allowed_aliases)}."
    known = library_glue.strategy_names()
    strategies = [s for s in dict.fromkeys(strategies or [])]
    unknown = [s for s in strategies if s not in known]
    if not strategies or unknown:
        errors["strategies"] = (f"Unknown strategies: {', '.join(unknown)}. " if unknown else "") + \
                               f"Choose at least one of: {', '.join(known)}."
    if library_version and library_version not in library_glue.library_versions():
        errors["library_version"] = f"No probe library {library_version!r}."
    variables = variables or {}
    if not isinstance(variables, dict):
        errors["variables"] = "Variables are a JSON object of the prompt's variables."
    attack_variable = (attack_variable or "").strip()
    if prompt_version is not None and attack_variable and attack_variable not in prompt_version.variables:
        errors["attack_variable"] = f"The version has no variable {attack_variable!r}; it has: " \
                                    f"{', '.join(prompt_version.variables) or 'none'}."
    if prompt_version is not None and "variables" not in errors and "attack_variable" not in errors:
        _check_render(prompt_version, variables, attack_variable, errors)
    concurrency = concurrency or settings.REDTEAM_DEFAULT_CONCURRENCY
    if not 1 <= int(concurrency) <= 200:
        errors["concurrency"] = "From 1 to 200 attacks in flight."
    if judge is not None and judge.kind != "llm_judge":
        errors["judge"] = "The judge is an LLM-judge evaluator (Evals → Evaluators)."
    evaluators = list(evaluators or [])
    if any(e.kind == "llm_judge" for e in evaluators):
        errors["evaluators"] = "Policy evaluators are deterministic; choose an LLM judge as the judge."
    if rag_collection is not None and (rag_collection.overlay_of_id is not None
                                       or not can(actor, Action.VIEW, rag_collection)):
        errors["rag_collection"] = "Choose a RAG collection you may read."
    if errors:
        raise ValidationError(errors)
    seed = seed if seed is not None else secrets.randbelow(2**31)
    campaign = Campaign(
        team=team, name=name, model=model, strategies=strategies, library_version=library_version,
        include_team_probes=include_team_probes, seed=seed, evaluator_ids=[e.pk for e in evaluators], judge=judge,
        concurrency=concurrency, created_by=user_of(actor))  # a token's campaign is its user's
    if prompt_version is not None:
        campaign.target_kind = TargetKind.PROMPT_VERSION
        campaign.prompt, campaign.prompt_version = prompt_version.prompt, prompt_version
        campaign.version_hash = prompt_version.content_hash
        campaign.variables, campaign.attack_variable = variables, attack_variable
        campaign.target_label = f"{prompt_version.prompt.name} v{prompt_version.number}"
    else:
        campaign.target_kind = TargetKind.GATEWAY_KEY
        campaign.gateway_key, campaign.system_prompt = gateway_key, system_prompt or ""
        campaign.target_label = f"key {gateway_key.name} → {model}"
    attacks = campaign_attacks(campaign)
    if not attacks:
        raise ValidationError({"library_version": "No probes: choose a library version or add team probes."})
    if rag_collection is not None:
        if not any(attack.document for attack in attacks):
            raise ValidationError({"rag_collection": "No attack of this campaign plants a document: add a strategy "
                                                     "that does (indirect_document) or probes that carry one, or "
                                                     "leave the collection empty."})
        campaign.rag_collection, campaign.rag_snapshot = rag_collection, planting.snapshot(rag_collection)
    campaign.save()
    campaign.canaries = {"system": library_glue.new_canary("system", f"{campaign.pk}:{seed}"),
                         "document": library_glue.new_canary("document", f"{campaign.pk}:{seed}")}
    campaign.save(update_fields=["canaries"])
    audit_record(action="redteam.campaign.create", obj=campaign, team=team, actor=actor,
                 object_repr=str(campaign)[:200],
                 changes={"target": campaign.target_label, "model": model, "strategies": strategies,
                          "library_version": library_version, "team_probes": include_team_probes,
                          "judge": judge.pk if judge else None, "evaluators": campaign.evaluator_ids,
                          "rag_collection": _collection_audit(campaign.rag_snapshot)})
    if start:
        transaction.on_commit(lambda: _queue_run(campaign.pk))
    return campaign


def _collection_audit(snapshot: dict) -> dict | None:
    keys = ("id", "name", "team", "documents", "chunks", "fingerprint")
    return {key: snapshot.get(key) for key in keys} if snapshot else None


@transaction.atomic
def campaign_cancel(*, campaign: Campaign, actor) -> Campaign:
    """Stop claiming at once; in-flight attacks land; the worker ends it `cancelled` (or now, if none runs)."""
    locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
    require(actor, Action.CHANGE, locked)
    if locked.status not in ACTIVE_STATUSES or locked.cancel_requested:
        raise ValidationError({"status": f"The campaign is already {locked.get_status_display().lower()}."})
    locked.cancel_requested = True
    fields = ["cancel_requested"]
    if locked.status == CampaignStatus.QUEUED or not Attack.objects.filter(
            campaign=locked, status=AttackStatus.RUNNING).exists():
        locked.status, locked.finished_at = CampaignStatus.CANCELLED, timezone.now()
        fields += ["status", "finished_at"]
    locked.save(update_fields=fields)
    if locked.status == CampaignStatus.CANCELLED:
        planting.cleanup(locked.pk)  # no worker runs it: its planted documents go now (a resume plants them again)
    audit_record(action="redteam.campaign.cancel", obj=locked, team=locked.team, actor=actor,
                 object_repr=str(locked)[:200],
                 changes={"done": locked.progress_done, "total": locked.progress_total, "status": locked.status})
    return locked


@transaction.atomic
def campaign_resume(*, campaign: Campaign, actor) -> Campaign:
    """Go on with a cancelled (or stalled) campaign: only the attacks not done yet are run."""
    locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
    require(actor, Action.CHANGE, locked)
    resumable = locked.status == CampaignStatus.CANCELLED or (
        locked.status == CampaignStatus.RUNNING and not locked.cancel_requested)
    if not resumable or locked.progress_total and locked.progress_done >= locked.progress_total:
        raise ValidationError({"status": "Only a cancelled or stalled campaign with attacks left can resume."})
    before = locked.status
    reclaim_dead(locked.pk, everything=locked.status == CampaignStatus.CANCELLED)
    locked.status, locked.cancel_requested, locked.finished_at = CampaignStatus.RUNNING, False, None
    locked.last_progress_at = timezone.now()
    locked.save(update_fields=["status", "cancel_requested", "finished_at", "last_progress_at"])
    audit_record(action="redteam.campaign.resume", obj=locked, team=locked.team, actor=actor,
                 object_repr=str(locked)[:200],
                 changes={"status": [before, locked.status], "done": locked.progress_done,
                          "total": locked.progress_total})
    transaction.on_commit(lambda: _queue_run(locked.pk))
    return locked


def campaigns_resume_stalled() -> list[int]:
    """The beat job: campaigns whose worker died (no progress for REDTEAM_STALL_SECONDS) are queued again; the
    gateway keys dead workers minted are revoked, the overlays of campaigns that no longer run are removed, and
    recent gateway-key campaigns' spend is read back again."""
    run_keys_sweep()
    planting.sweep()  # the planted documents of campaigns that no longer run (a worker died before its cleanup)
    refresh_spend(since=timezone.now() - SPEND_READ_BACK)
    ids = stalled_campaigns()
    for campaign_id in ids:
        _queue_run(campaign_id)
    return ids


# --- team probes ------------------------------------------------------------------------------------------------

def _probe_errors(probe: library_glue.ProbeSpec) -> list[str]:
    problems = []
    if not probe.id or len(probe.id) > 200:
        problems.append("id: 1 to 200 characters")
    if not probe.category or len(probe.category) > 80:
        problems.append("category: 1 to 80 characters")
    if not probe.text.strip():
        problems.append("text: empty")
    for field_name in ("id", "category", "text", "marker"):
        problem = text_problem(getattr(probe, field_name))
        if problem:
            problems.append(f"{field_name}: {problem}")
    return problems


@transaction.atomic
def team_probes_import(*, team, actor, text: str, replace: bool = False) -> dict:
    """JSONL probes into the team's own set; every bad line is reported with its number and nothing is written
    unless every line is good. Returns {"added", "updated"}."""
    require(actor, Action.CHANGE, team)
    probes, line_errors = library_glue.parse_probes_jsonl(text or "")
    errors = [f"line {line}: {message}" for line, message in line_errors]
    seen: set[str] = set()
    for index, probe in enumerate(probes, start=1):
        errors += [f"probe {probe.id or index}: {problem}" for problem in _probe_errors(probe)]
        if probe.id in seen:
            errors.append(f"probe {probe.id}: appears twice")
        seen.add(probe.id)
    if not probes and not errors:
        errors.append("The file holds no probe (one JSON object a line: id, category, text).")
    if errors:
        raise ValidationError({"file": errors[:50]})
    existing = set(TeamProbe.objects.filter(team=team, probe_id__in=seen).values_list("probe_id", flat=True))
    if replace:
        TeamProbe.objects.filter(team=team).exclude(probe_id__in=seen).delete()
    user = actor if getattr(actor, "is_authenticated", False) else None
    for probe in probes:
        TeamProbe.objects.update_or_create(
            team=team, probe_id=probe.id,
            defaults={"category": probe.category, "owasp": probe.owasp[:20], "harm": probe.harm[:80],
                      "text": probe.text, "marker": probe.marker[:200], "created_by": user})
    counts = {"added": len(seen - existing), "updated": len(seen & existing)}
    audit_record(action="redteam.probes.import", obj=team, team=team, actor=actor,
                 changes={**counts, "replace": replace})
    return counts


@transaction.atomic
def team_probe_delete(*, probe: TeamProbe, actor) -> None:
    require(actor, Action.CHANGE, probe.team)
    audit_record(action="redteam.probe.delete", obj=probe.team, team=probe.team, actor=actor,
                 changes={"probe": probe.probe_id})
    probe.delete()


# --- findings ---------------------------------------------------------------------------------------------------

@transaction.atomic
def attack_triage(*, attack: Attack, actor, decision: str, note: str = "") -> Attack:
    """A reviewer's call on a successful attack: accepted risk, to fix, or false positive."""
    locked = Attack.objects.select_for_update().select_related("campaign__team").get(pk=attack.pk)
    require(actor, Action.CHANGE, locked.campaign)
    if decision not in (Triage.ACCEPTED_RISK, Triage.TO_FIX, Triage.FALSE_POSITIVE):
        raise ValidationError({"decision": "Choose accepted risk, to fix, or false positive."})
    if locked.success is not True:
        raise ValidationError({"decision": "Only a successful attack is a finding to triage."})
    note = (note or "").strip()
    if text_problem(note):
        raise ValidationError({"note": text_problem(note)})
    if decision == Triage.ACCEPTED_RISK and not note:
        raise ValidationError({"note": "Say why the risk is accepted."})
    before = locked.triage
    locked.triage, locked.triage_note = decision, note
    locked.triaged_by = actor if getattr(actor, "is_authenticated", False) else None
    locked.triaged_at = timezone.now()
    locked.save(update_fields=["triage", "triage_note", "triaged_by", "triaged_at"])
    audit_record(action="redteam.finding.triage", obj=locked.campaign, team=locked.campaign.team, actor=actor,
                 object_repr=str(locked.campaign)[:200],
                 changes={"attack": locked.pk, "key": locked.key, "triage": [before, decision], "note": note[:500]})
    return locked


@transaction.atomic
def attack_to_dataset_item(*, attack: Attack, actor, dataset) -> Attack:
    """A "to fix" finding becomes a regression test: an item of one of the team's eval datasets (inputs: the
    attack; tags: redteam, its category and strategy). The dataset's revision is audited by evals."""
    locked = Attack.objects.select_for_update().select_related("campaign__team").get(pk=attack.pk)
    require(actor, Action.CHANGE, locked.campaign)
    require(actor, Action.CHANGE, dataset)
    if locked.triage != Triage.TO_FIX:
        raise ValidationError({"dataset": "Mark the finding “to fix” first."})
    if locked.dataset_item:
        raise ValidationError({"dataset": f"Already in a dataset ({locked.dataset_item})."})
    if dataset.team_id != locked.campaign.team_id:
        raise ValidationError({"dataset": "Choose a dataset of the campaign's team."})
    key = f"redteam-{locked.campaign_id}-{locked.pk}"
    name = dataset.input_names[0] if dataset.input_names else "input"
    inputs = {name: locked.text}
    if locked.document:
        inputs["document"] = locked.document
    dataset_items_add(dataset=dataset, actor=actor, source=ItemSource.MANUAL,
                      source_ref=f"redteam-attack:{locked.pk}",
                      message=f"from red-team campaign {locked.campaign_id}: {locked.key}",
                      items=[{"id": key, "inputs": inputs, "expected": None,
                              "tags": ["redteam", locked.category, locked.strategy],
                              "metadata": {"redteam_campaign": locked.campaign_id, "probe": locked.probe_id,
                                           "strategy": locked.strategy, "owasp": locked.owasp,
                                           "expect": "refuse"}}])
    locked.dataset_item = f"{dataset.pk}:{key}"
    locked.save(update_fields=["dataset_item"])
    audit_record(action="redteam.finding.to_dataset", obj=locked.campaign, team=locked.campaign.team, actor=actor,
                 object_repr=str(locked.campaign)[:200],
                 changes={"attack": locked.pk, "dataset": dataset.pk, "item": key})
    return locked


# --- the team's gate thresholds -----------------------------------------------------------------------------

@transaction.atomic
def policy_set(*, team, actor, default_max_asr: float, max_asr: dict | None = None,
               min_judge_kappa: float = 0.6) -> RedTeamPolicy:
    require(actor, Action.MANAGE, team)
    errors = {}
    for name, value in (("default_max_asr", default_max_asr), ("min_judge_kappa", min_judge_kappa),
                        *((f"max_asr.{k}", v) for k, v in (max_asr or {}).items())):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            errors[name] = "A number from 0 to 1."
    if errors:
        raise ValidationError(errors)
    policy, _ = RedTeamPolicy.objects.get_or_create(team=team)
    before = {"default_max_asr": policy.default_max_asr, "max_asr": policy.max_asr,
              "min_judge_kappa": policy.min_judge_kappa}
    policy.default_max_asr, policy.max_asr = float(default_max_asr), {k: float(v) for k, v in (max_asr or {}).items()}
    policy.min_judge_kappa, policy.updated_at = float(min_judge_kappa), timezone.now()
    policy.save()
    audit_record(action="redteam.policy.set", obj=team, team=team, actor=actor,
                 changes={"before": before, "after": {"default_max_asr": policy.default_max_asr,
                                                      "max_asr": policy.max_asr,
                                                      "min_judge_kappa": policy.min_judge_kappa}})
    return policy


# --- evidence for a use case's control ----------------------------------------------------------------------

def campaign_evidence_control(*, campaign: Campaign, condition, actor):
    """Submit a finished campaign's report as the evidence of a use case condition covering the
    "prompt-injection red team" control (reviews' service; the council accepts it there)."""
    require(actor, Action.VIEW, campaign)
    if campaign.status != CampaignStatus.FINISHED:
        raise ValidationError({"condition": "Only a finished campaign can evidence the control."})
    if condition.control != REDTEAM_CONTROL:
        raise ValidationError({"condition": "Choose a condition that covers the prompt-injection red team control."})
    overall = campaign.summary.get("overall") or {}
    note = (f"Red-team campaign “{campaign.name}” on {campaign.target_label} ({campaign.model}): "
            f"{overall.get('successes', 0)} of {overall.get('total', 0)} attacks succeeded; ASR upper bound "
            f"{(overall.get('high') or 0):.1%} (Wilson 95 %).")
    return condition_evidence_submit(condition=condition, actor=actor,
                                     url=reverse("redteam:report", args=[campaign.pk]), note=note)
