"""Writes of the experiments app: create, start, pause, kill, stop, promote the winner. One audit event per
change; every change of what the gateway serves moves the prompt's stamp after the commit, so the next
request in every gateway process routes by the new state (apps/gateway/splits.py, ADR 0108).

Who may: engineers and owners of the prompt's team, and admins (Action.CHANGE on the experiment). Bad input
raises ValidationError naming the field; nothing is written.
"""

from __future__ import annotations

import re
import secrets

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import Membership, Role
from apps.accounts.permissions import Action, can, user_of
from apps.audit.services import audit_record
from apps.core.safe_input import text_problem
from apps.experiments import selectors
from apps.experiments.models import ENDED, LIVE, Experiment, ExperimentArm, Status, Unit
from apps.llm import selectors as llm_selectors
from apps.notifications.services import notify
from apps.prompts import selectors as prompt_selectors
from apps.prompts import services as prompt_services
from apps.prompts.resolve import stamps_bump

KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
MAX_ARMS = 5


def _require(actor, experiment_or_prompt, message: str) -> None:
    if not can(actor, Action.CHANGE, experiment_or_prompt):
        raise PermissionDenied(message)


def _weight(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _clean_target(prompt, key: str, arm: dict, control_label: str, known: dict) -> tuple[dict | None, str]:
    """(label, version_number, model) of one arm, or the problem with it. `known`: the prompt's labels and
    versions and the catalog's models and aliases."""
    label, model = str(arm.get("label") or "").strip(), str(arm.get("model") or "").strip()
    version = arm.get("version") or None
    if label and version:
        return None, f"{key}: a label or a version, not both."
    if version is not None:
        version = _weight(version) or -1
        if version not in known["versions"]:
            return None, f"{key}: {prompt.name} has no version {version}."
    elif not label:
        label = control_label
    if label and version is None and label not in known["labels"]:
        return None, f"{key}: {prompt.name} has no label '{label}'."
    if model and model not in known["models"]:
        return None, f"{key}: no model or alias named '{model}'."
    return {"label": label if version is None else "", "version_number": version, "model": model[:200]}, ""


def _clean_arms(prompt, arms: list[dict], control_label: str, errors: dict) -> list[dict]:
    """Each arm: key, weight (percent), a label or a version of the prompt (the control label when neither),
    optionally a model or alias. Weights add up to 100; the first arm is the control."""
    if not 2 <= len(arms) <= MAX_ARMS:
        errors["arms"] = f"From 2 to {MAX_ARMS} arms: the control first, then the candidates."
        return []
    known = {"labels": {label.name for label in prompt_selectors.label_list(prompt=prompt)},
             "versions": set(selectors.version_numbers(prompt)),
             "models": set(llm_selectors.alias_names()) | {m.name for m in llm_selectors.model_list()}}
    clean, keys = [], set()
    for position, arm in enumerate(arms):
        key = str(arm.get("key") or "").strip().lower()
        if not KEY.match(key) or key in keys:
            errors["arms"] = f"arm {position + 1}: a short distinct key (lower-case letters, digits, dashes)."
            continue
        keys.add(key)
        weight = _weight(arm.get("weight"))
        if not 1 <= weight <= 99:
            errors["arms"] = f"{key}: a weight from 1 to 99 (percent)."
            continue
        target, problem = _clean_target(prompt, key, arm, control_label, known)
        if target is None:
            errors["arms"] = problem
            continue
        clean.append({"key": key, "position": position, "weight": weight, **target})
    if not errors and sum(a["weight"] for a in clean) != 100:
        errors["arms"] = f"The weights add up to {sum(a['weight'] for a in clean)} %, not 100 %."
    if not errors and len({(a["label"], a["version_number"], a["model"]) for a in clean}) != len(clean):
        errors["arms"] = "Two arms serve the same thing: make each arm a different label, version or model."
    return clean


@transaction.atomic
def experiment_create(*, actor, prompt, name: str, arms: list[dict], hypothesis: str = "", unit: str = Unit.USER,
                      control_label: str = "production", mde: float = 0.05, alpha: float = 0.05,
                      min_outcomes: int = 100, use_case_id: int | None = None) -> Experiment:
    """A draft experiment on a prompt: nothing is split until it is started."""
    _require(actor, prompt, "Engineers and owners of the prompt's team create its experiments.")
    errors: dict[str, str] = {}
    name = (name or "").strip()
    if not name or len(name) > 200:
        errors["name"] = "A name of at most 200 characters."
    elif problem := text_problem(name):
        errors["name"] = problem
    if unit not in Unit.values:
        errors["unit"] = "Split by end user or by tenant."
    try:
        mde, alpha, min_outcomes = float(mde), float(alpha), int(min_outcomes)
    except (TypeError, ValueError):
        errors["mde"] = "Numbers, please."
    else:
        if not 0.005 <= mde <= 0.5:
            errors["mde"] = "The smallest effect worth detecting: from 0.005 to 0.5 (an absolute change in rate)."
        if not 0.001 <= alpha <= 0.2:
            errors["alpha"] = "The significance level: from 0.001 to 0.2."
        if not 10 <= min_outcomes <= 1_000_000:
            errors["min_outcomes"] = "At least 10 outcomes per arm before any verdict."
    control_label = (control_label or "production").strip()
    clean = _clean_arms(prompt, arms or [], control_label, errors)
    if clean and not errors and clean[0]["label"] != control_label:
        errors["arms"] = f"The first arm is the control: it serves the label '{control_label}'."
    if errors:
        raise ValidationError(errors)
    experiment = Experiment.objects.create(
        team_id=prompt.team_id, prompt=prompt, name=name, hypothesis=(hypothesis or "").strip(), unit=unit,
        control_label=control_label, salt=secrets.token_hex(8), mde=mde, alpha=alpha, min_outcomes=min_outcomes,
        use_case_id=use_case_id if use_case_id is not None else selectors.use_case_of_prompt(prompt.pk),
        created_by=user_of(actor))
    ExperimentArm.objects.bulk_create([ExperimentArm(experiment=experiment, **arm) for arm in clean])
    audit_record(action="experiment.create", obj=experiment, object_repr=f"{prompt.name}: {name}",
                 changes={"arms": [{k: a[k] for k in ("key", "weight", "label", "version_number", "model")}
                                   for a in clean], "unit": unit, "mde": mde, "alpha": alpha}, actor=actor)
    return experiment


def _lock(experiment: Experiment) -> Experiment:
    return Experiment.objects.select_for_update().select_related("prompt").get(pk=experiment.pk)


def _served_changed(experiment: Experiment) -> None:
    """What the gateway serves for this prompt changed: every process re-reads the split on its next request."""
    prompt_id = experiment.prompt_id
    transaction.on_commit(lambda: stamps_bump({prompt_id}))


def _tell_owners(experiment: Experiment, *, actor, kind: str, title: str, body: str = "",
                 dedupe_key: str = "") -> int:
    """The prompt's owners (its team's owners) and the experiment's author, except whoever acted."""
    people = [m.user for m in Membership.objects.filter(team_id=experiment.team_id, role=Role.OWNER)
              .select_related("user")] + [experiment.created_by]
    acting = user_of(actor)
    return len(notify(users=[p for p in people if p is not None and p != acting], kind=kind, title=title,
                      body=body, link=experiment.get_absolute_url(), dedupe_key=dedupe_key))


def _move(experiment: Experiment, *, actor, to: str, allowed_from: tuple, action: str, reason: str = "",
          message: str) -> Experiment:
    _require(actor, experiment, "Engineers and owners of the prompt's team run its experiments.")
    experiment = _lock(experiment)
    if experiment.status not in allowed_from:
        raise ValidationError({"status": f"{message} (it is {experiment.get_status_display().lower()})."})
    before = experiment.status
    now = timezone.now()
    experiment.status = to
    fields = ["status"]
    if to == Status.RUNNING and experiment.started_at is None:
        experiment.started_at = now
        fields.append("started_at")
    if to in ENDED:
        experiment.ended_at, experiment.end_reason = now, reason
        experiment.result = selectors.comparison(experiment)
        fields += ["ended_at", "end_reason", "result"]
    try:
        with transaction.atomic():
            experiment.save(update_fields=fields)
    except IntegrityError:
        raise ValidationError({"status": f"Another experiment on {experiment.prompt.name} is running or paused: "
                                         "stop it first."}) from None
    audit_record(action=action, obj=experiment, object_repr=f"{experiment.prompt.name}: {experiment.name}",
                 changes={"status": [before, to], **({"reason": reason} if reason else {})}, actor=actor)
    _served_changed(experiment)
    return experiment


@transaction.atomic
def experiment_start(*, experiment: Experiment, actor) -> Experiment:
    """Split the prompt's live traffic (again, after a pause). One running or paused experiment per prompt."""
    experiment = _move(experiment, actor=actor, to=Status.RUNNING, allowed_from=(Status.DRAFT, Status.PAUSED),
                       action="experiment.start", message="Only a draft or paused experiment starts")
    _tell_owners(experiment, actor=actor, kind="experiment.started",
                 title=f"Experiment started: {experiment.name}",
                 body=f"{experiment.prompt.name}@{experiment.control_label} traffic is split between "
                      f"{', '.join(str(a) for a in selectors.arms_of(experiment))}.")
    return experiment


@transaction.atomic
def experiment_pause(*, experiment: Experiment, actor) -> Experiment:
    """All traffic back to the control until started again; what was attributed stays."""
    return _move(experiment, actor=actor, to=Status.PAUSED, allowed_from=(Status.RUNNING,),
                 action="experiment.pause", message="Only a running experiment pauses")


@transaction.atomic
def experiment_kill(*, experiment: Experiment, actor, reason: str) -> Experiment:
    """The kill switch: every request back to the control at once, for good; the owners are told."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why the experiment is killed (the owners are told)."})
    experiment = _move(experiment, actor=actor, to=Status.KILLED, allowed_from=LIVE, action="experiment.kill",
                       reason=reason, message="Only a running or paused experiment is killed")
    _tell_owners(experiment, actor=actor, kind="experiment.killed", title=f"Experiment killed: {experiment.name}",
                 body=f"All {experiment.prompt.name} traffic is back on the control. Why: {reason}")
    return experiment


@transaction.atomic
def experiment_stop(*, experiment: Experiment, actor, reason: str = "") -> Experiment:
    """End the experiment without a promotion (traffic back to the control); its result is kept."""
    experiment = _move(experiment, actor=actor, to=Status.STOPPED, allowed_from=(Status.DRAFT, *LIVE),
                       action="experiment.stop", reason=(reason or "").strip(),
                       message="The experiment has already ended")
    _tell_owners(experiment, actor=actor, kind="experiment.stopped", title=f"Experiment stopped: {experiment.name}",
                 body=(reason or "").strip())
    return experiment


@transaction.atomic
def experiment_promote(*, experiment: Experiment, actor, arm_key: str, reason: str = ""):
    """End the experiment and ask, through the catalog's normal promotion request, to move the control label to
    the arm's version. The request's `experiment` gate check reads the stored result; the approvers are told
    by the catalog. Returns the promotion request."""
    _require(actor, experiment, "Engineers and owners of the prompt's team promote its experiments' winners.")
    arm = next((a for a in selectors.arms_of(experiment) if a.key == arm_key), None)
    if arm is None or arm.is_control:
        raise ValidationError({"arm": "Choose a candidate arm to promote."})
    if arm.model:
        raise ValidationError({"arm": f"{arm.key} changes the model: set the model in a new prompt version and "
                                      "promote that version."})
    version_number = selectors.arm_version(arm, experiment.prompt)
    if version_number is None:
        raise ValidationError({"arm": f"{arm.key}'s label no longer points at a version."})
    if experiment.status not in ENDED:
        experiment = _move(experiment, actor=actor, to=Status.STOPPED, allowed_from=(Status.DRAFT, *LIVE),
                           action="experiment.stop", reason=f"Promoting {arm.key}.", message="")
    version = prompt_selectors.version_get(prompt=experiment.prompt, number=version_number)
    request = prompt_services.promotion_request_open(
        prompt=experiment.prompt, version=version, actor=actor, label=experiment.control_label,
        reason=(reason or "").strip() or f"Experiment #{experiment.pk} ({experiment.name}): {arm.key} won.")
    Experiment.objects.filter(pk=experiment.pk).update(promotion_request_id=request.pk)
    experiment.promotion_request_id = request.pk
    audit_record(action="experiment.promote", obj=experiment, object_repr=f"{experiment.prompt.name}: "
                 f"{experiment.name}", changes={"arm": arm.key, "version": version_number,
                                                "promotion_request": request.pk}, actor=actor)
    return request


def experiments_verdicts_notify() -> int:
    """Beat (every 15 minutes): for each running experiment, tell its owners and author once per arm when the arm
    becomes a winner (promote it, or stop) or significantly less safe than the control (kill it). Not a state
    change: nothing is audited. Returns how many notices were sent."""
    told = 0
    for experiment in Experiment.objects.filter(status=Status.RUNNING).select_related("prompt", "created_by"):
        for row in selectors.comparison(experiment)["arms"][1:]:
            safety = row.get("safety_test") or {}
            if row.get("winner"):
                kind, title = "experiment.winner", f"{experiment.name}: {row['key']} wins — promote it or stop"
            elif safety.get("p_value", 1) < experiment.alpha and safety.get("difference", 0) > 0:
                kind, title = "experiment.harm", f"{experiment.name}: {row['key']} is less safe — consider killing it"
            else:
                continue
            told += _tell_owners(experiment, actor=None, kind=kind, title=title, body=row["verdict"],
                                 dedupe_key=f"{kind}:{experiment.pk}:{row['key']}")
    return told


def experiments_srm_check() -> int:
    """Beat (every 5 minutes): the sample-ratio-mismatch check of every running experiment not alarmed yet. On a
    mismatch (units per arm against the weights, chi-square p < 0.001) the experiment is marked (its comparison is
    untrustworthy until acknowledged), audited, and its owners and author are told. Returns how many alarmed."""
    alarmed = 0
    for experiment in Experiment.objects.filter(status=Status.RUNNING, srm_alarm_at__isnull=True):
        arms = selectors.arms_of(experiment)
        srm = selectors.sample_ratio(experiment, arms, selectors.units_per_arm(experiment.pk))
        if srm["mismatch"]:
            alarmed += _srm_alarm(experiment, srm)
    return alarmed


def _srm_describe(srm: dict) -> str:
    return (", ".join(f"{key} {n} (expected {srm['expected'][key]:.0f})" for key, n in srm["observed"].items())
            + f"; p = {srm['p_value']:.2g}")


@transaction.atomic
def _srm_alarm(experiment: Experiment, srm: dict) -> int:
    updated = Experiment.objects.filter(pk=experiment.pk, srm_alarm_at__isnull=True).update(
        srm_alarm_at=timezone.now(), srm_p_value=srm["p_value"])
    if not updated:  # another worker raised it
        return 0
    experiment.refresh_from_db()
    audit_record(action="experiment.srm_alarm", obj=experiment,
                 object_repr=f"{experiment.prompt.name}: {experiment.name}",
                 changes={"observed": srm["observed"], "p_value": srm["p_value"]}, actor=None)
    _tell_owners(experiment, actor=None, kind="experiment.srm",
                 title=f"{experiment.name}: sample ratio mismatch — results untrustworthy",
                 body=f"Units per arm do not match the weights ({_srm_describe(srm)}). Find the cause (a bot, a "
                      "redirect, a unit missing on some requests), then acknowledge it on the experiment page.",
                 dedupe_key=f"experiment.srm:{experiment.pk}")
    return 1


@transaction.atomic
def experiment_srm_acknowledge(*, experiment: Experiment, actor, note: str) -> Experiment:
    """Someone who runs the experiment has looked at the sample ratio mismatch and says why the comparison may be
    read again (a note is required). A mismatch the beat has not alarmed yet is recorded now."""
    _require(actor, experiment, "Engineers and owners of the prompt's team acknowledge its experiments' alarms.")
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": "Say what caused the mismatch or why the results may be trusted."})
    if problem := text_problem(note):
        raise ValidationError({"note": problem})
    experiment = _lock(experiment)
    if experiment.srm_acknowledged_at is not None:
        raise ValidationError({"status": "The sample ratio mismatch has already been acknowledged."})
    if experiment.srm_alarm_at is None:
        srm = selectors.sample_ratio(experiment, selectors.arms_of(experiment),
                                     selectors.units_per_arm(experiment.pk))
        if not srm["mismatch"]:
            raise ValidationError({"status": "There is no sample ratio mismatch to acknowledge."})
        experiment.srm_alarm_at, experiment.srm_p_value = timezone.now(), srm["p_value"]
    experiment.srm_acknowledged_at, experiment.srm_acknowledged_by = timezone.now(), user_of(actor)
    experiment.srm_note = note[:2000]
    fields = ["srm_alarm_at", "srm_p_value", "srm_acknowledged_at", "srm_acknowledged_by", "srm_note"]
    if experiment.status in ENDED:  # its stored result (and so the gate check) names its winner again
        experiment.result = selectors.comparison(experiment)
        fields.append("result")
    experiment.save(update_fields=fields)
    audit_record(action="experiment.srm_acknowledge", obj=experiment,
                 object_repr=f"{experiment.prompt.name}: {experiment.name}",
                 changes={"p_value": experiment.srm_p_value, "note": experiment.srm_note}, actor=actor)
    return experiment
