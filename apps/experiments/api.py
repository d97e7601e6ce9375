"""REST API of experiments (/api/v1/experiments). Same services and selectors as the pages.

    GET  /api/v1/experiments                      the experiments you may see (filter: status)
    GET  /api/v1/experiments/{id}                 one experiment with its arms compared
    POST /api/v1/experiments/{id}/{action}        start | pause | stop | kill (kill needs a reason)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from ninja import Router, Schema

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
    url: str


class ExperimentOut(ExperimentRow):
    arms: list[dict[str, Any]]
    comparison: dict[str, Any] | None


class ActionIn(Schema):
    reason: str = ""


def _row(e: Experiment) -> dict:
    return {"id": e.pk, "name": e.name, "prompt": e.prompt.name, "control_label": e.control_label,
            "status": e.status, "unit": e.unit, "use_case_id": e.use_case_id, "started_at": e.started_at,
            "ended_at": e.ended_at, "url": e.get_absolute_url()}


def _out(e: Experiment) -> dict:
    arms = [{"key": a.key, "weight": a.weight, "label": a.label, "version": a.version_number, "model": a.model}
            for a in selectors.arms_of(e)]
    return {**_row(e), "arms": arms, "comparison": None if e.status == "draft" else selectors.ended_result(e)}


@router.get("", response=list[ExperimentRow], summary="The experiments you may see")
def experiment_list(request, status: str = ""):
    return [_row(e) for e in selectors.experiment_list(actor=request.auth, status=status)[:500]]


@router.get("/{int:experiment_id}", response={200: ExperimentOut, **errors(404)},
            summary="One experiment, its arms compared")
def experiment_get(request, experiment_id: int):
    return _out(selectors.experiment_get(actor=request.auth, pk=experiment_id))


@router.post("/{int:experiment_id}/{action}", response={200: ExperimentOut, **errors(403, 404, 422)},
             summary="Start, pause, stop or kill an experiment")
def experiment_action(request, experiment_id: int, action: str, payload: ActionIn):
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
        raise ValidationError({"action": "One of start, pause, stop, kill."})
    return _out(selectors.experiment_get(actor=request.auth, pk=experiment_id))
