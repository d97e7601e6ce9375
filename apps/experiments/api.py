"""REST API of experiments (/api/v1/experiments). Same services, selectors and permission checks as the pages:
reading needs a read token of a team that sees the experiment; writing needs a write token of an engineer or
owner of the prompt's team (or an admin). Errors are the one ApiError body (ADR 0092).

    GET  /api/v1/experiments                      the experiments you may see (filter: status)
    POST /api/v1/experiments                      a draft experiment on a prompt (201)
    GET  /api/v1/experiments/{id}                 one experiment with its arms compared
    POST /api/v1/experiments/{id}/{action}        start | pause | stop | kill | acknowledge-srm
                                                  (kill and acknowledge-srm need a reason)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.http import Http404
from ninja import Field, Router, Schema, Status

from apps.accounts.permissions import Action
from apps.core.api_errors import errors
from apps.experiments import selectors, services
from apps.experiments.models import Experiment

router = Router(tags=["experiments"])


class ExperimentRow(Schema):
    id: int
    name: str
    prompt: str
    control_label: str
    status: str
    unit: str
    use_case_id: int | None
    started_at: datetime | None
    ended_at: datetime | None
    srm_alarm_at: datetime | None = Field(None, description="When the sample-ratio-mismatch alarm was raised")
    srm_acknowledged_at: datetime | None = None
    url: str


class ExperimentOut(ExperimentRow):
    arms: list[dict[str, Any]]
    comparison: dict[str, Any] | None = Field(None, description="The arms compared per unit (null for a draft); "
                                                                "`trustworthy` is false while a sample ratio "
                                                                "mismatch is not acknowledged")


class ArmIn(Schema):
    key: str = Field(description="A short key: lower-case letters, digits, dashes (the first arm is the control)")
    weight: int = Field(description="Percent of the units; the arms add up to 100")
    label: str = Field("", description="A label of the prompt (default: the control label), or")
    version: int | None = Field(None, description="a version number of the prompt")
    model: str = Field("", description="Optionally another model or alias than the version's own")


class ExperimentIn(Schema):
    prompt: str = Field(description="The prompt's name, e.g. support/triage-summary")
    name: str
    arms: list[ArmIn] = Field(description="2 to 5 arms, the control first")
    hypothesis: str = ""
    unit: str = Field("user", description="user (end user) or tenant: what the split is sticky on")
    control_label: str = "production"
    mde: float = Field(0.05, description="The smallest effect worth detecting (absolute change in task success)")
    alpha: float = 0.05
    min_outcomes: int = Field(100, description="Known outcomes per arm before any verdict")


class ActionIn(Schema):
    reason: str = Field("", description="Why (kill), or what caused the mismatch (acknowledge-srm)")


def _row(e: Experiment) -> dict:
    return {"id": e.pk, "name": e.name, "prompt": e.prompt.name, "control_label": e.control_label,
            "status": e.status, "unit": e.unit, "use_case_id": e.use_case_id, "started_at": e.started_at,
            "ended_at": e.ended_at, "srm_alarm_at": e.srm_alarm_at, "srm_acknowledged_at": e.srm_acknowledged_at,
            "url": e.get_absolute_url()}


def _out(e: Experiment) -> dict:
    arms = [{"key": a.key, "weight": a.weight, "label": a.label, "version": a.version_number, "model": a.model}
            for a in selectors.arms_of(e)]
    return {**_row(e), "arms": arms, "comparison": None if e.status == "draft" else selectors.ended_result(e)}


@router.get("", response=list[ExperimentRow], summary="The experiments you may see")
def experiment_list(request, status: str = ""):
    return [_row(e) for e in selectors.experiment_list(actor=request.auth, status=status)[:500]]


@router.post("", response={201: ExperimentOut, **errors(403, 422)}, summary="Create a draft experiment on a prompt")
def experiment_create(request, payload: ExperimentIn):
    try:
        prompt = selectors.prompt_for(actor=request.auth, name=payload.prompt.strip(), action=Action.VIEW)
    except Http404:
        raise ValidationError({"prompt": f"No prompt named '{payload.prompt.strip()[:200]}' that you may see."}) \
            from None
    experiment = services.experiment_create(
        actor=request.auth, prompt=prompt, name=payload.name, hypothesis=payload.hypothesis, unit=payload.unit,
        control_label=payload.control_label, mde=payload.mde, alpha=payload.alpha,
        min_outcomes=payload.min_outcomes, arms=[arm.model_dump() for arm in payload.arms])
    return Status(201, _out(selectors.experiment_get(actor=request.auth, pk=experiment.pk)))


@router.get("/{int:experiment_id}", response={200: ExperimentOut, **errors(404)},
            summary="One experiment, its arms compared")
def experiment_get(request, experiment_id: int):
    return _out(selectors.experiment_get(actor=request.auth, pk=experiment_id))


@router.post("/{int:experiment_id}/{action}", response={200: ExperimentOut, **errors(403, 404, 422)},
             summary="Start, pause, stop or kill an experiment, or acknowledge its sample ratio mismatch")
def experiment_action(request, experiment_id: int,
                      action: Literal["start", "pause", "stop", "kill", "acknowledge-srm"], payload: ActionIn):
    experiment = selectors.experiment_get(actor=request.auth, pk=experiment_id)
    if action == "start":
        services.experiment_start(experiment=experiment, actor=request.auth)
    elif action == "pause":
        services.experiment_pause(experiment=experiment, actor=request.auth)
    elif action == "stop":
        services.experiment_stop(experiment=experiment, actor=request.auth, reason=payload.reason)
    elif action == "kill":
        services.experiment_kill(experiment=experiment, actor=request.auth, reason=payload.reason)
    else:
        services.experiment_srm_acknowledge(experiment=experiment, actor=request.auth, note=payload.reason)
    return _out(selectors.experiment_get(actor=request.auth, pk=experiment_id))
