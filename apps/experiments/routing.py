"""The split the gateway asks for (apps/gateway/splits.py `register_split_source`): the running experiment of a
prompt as plain values. Asked once per prompt stamp and gateway process, so one small query per change."""

from __future__ import annotations

from apps.experiments.models import Experiment, Status
from apps.gateway import splits


def split_for_prompt(prompt_id: int) -> splits.Split | None:
    experiment = Experiment.objects.filter(prompt_id=prompt_id, status=Status.RUNNING).first()
    if experiment is None:
        return None
    arms = tuple(splits.Arm(key=a.key, weight=a.weight, label=a.label, version=a.version_number, model=a.model)
                 for a in experiment.arms.order_by("position"))
    return splits.Split(experiment_id=experiment.pk, salt=experiment.salt, unit=experiment.unit,
                        control_label=experiment.control_label, arms=arms)
