"""Online experiments at the front door: the split of a prompt's live traffic between arms (ADR 0108).

    register_split_source(fn)     # fn(prompt_id) -> Split | None (sync, may query); experiments registers it

A request for `prompt:NAME@LABEL` where LABEL is a running experiment's control label is routed to one arm:
`assign(split, unit)` hashes the experiment's salt and the unit (the OpenAI `user` field, else
`metadata.end_user`; or the tenant) into [0, 1) and picks the arm whose weight band holds it, so a unit
always gets the same arm. An arm names a label or a version of the prompt, and optionally a model (alias) in
place of the version's. A request without its unit goes to the control arm and is not attributed.

The split is kept in each process under the prompt's stamp, the one `prompt_ref` already reads on every such
request (no extra Redis round trip): the experiments app moves that stamp after every state change, so a
start, pause, kill or stop reaches the next request in every gateway process. No stamp (cache down): control.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from asgiref.sync import sync_to_async
from django.conf import settings

log = logging.getLogger(__name__)

UNIT_USER = "user"
UNIT_TENANT = "tenant"
_SCALE = float(2**64)


@dataclass(frozen=True)
class Arm:
    key: str  # "control", "candidate", …: what the ledger row carries
    weight: int  # a share of the total weight (percent in the portal's form)
    label: str = ""  # a label of the prompt, or
    version: int | None = None  # a version number
    model: str = ""  # an alias or model called instead of the version's own


@dataclass(frozen=True)
class Split:
    experiment_id: int
    salt: str
    unit: str  # UNIT_USER or UNIT_TENANT
    control_label: str  # requests for this label are split (usually production)
    arms: tuple[Arm, ...]  # the first is the control


def bucket(salt: str, unit: str) -> float:
    """A uniform number in [0, 1) that depends only on the experiment's salt and the unit."""
    digest = hashlib.sha256(f"{salt}\x1f{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign(arms: tuple[Arm, ...] | list[Arm], salt: str, unit: str) -> Arm:
    """The arm whose band of cumulative weight holds this unit's bucket (deterministic, sticky)."""
    point = bucket(salt, unit) * sum(arm.weight for arm in arms)
    upto = 0
    for arm in arms:
        upto += arm.weight
        if point < upto:
            return arm
    return arms[0]


def unit_of(split: Split, data: dict, metadata: dict, tenant: str) -> str:
    """The unit this request is assigned by: the end user (OpenAI's `user`, else metadata.end_user) or the
    tenant (metadata.tenant, else the X-Portal-Tenant header). "" when the request does not say."""
    if split.unit == UNIT_TENANT:
        value = metadata.get("tenant") or tenant
    else:
        value = data.get("user") or metadata.get("end_user")
    return value.strip()[:200] if isinstance(value, str) else ""


def unit_key(experiment_id: int, unit: str) -> str:
    """What the ledger row keeps of the unit (`experiment_unit`), for the per-unit analysis: a keyed hash, never
    the raw value (often an e-mail address), distinct per experiment. 32 hex characters, microseconds."""
    return hashlib.blake2b(f"{experiment_id}\x1f{unit}".encode(), digest_size=16,
                           key=settings.SECRET_KEY.encode()[:64]).hexdigest()


SplitSource = Callable[[int], "Split | None"]
_sources: dict[str, SplitSource] = {}


def register_split_source(key: str, fn: SplitSource) -> None:
    _sources[key] = fn


def split_for(prompt_id: int) -> Split | None:
    """The running split of this prompt, from the first source that has one (sync: may query)."""
    for fn in _sources.values():
        split = fn(prompt_id)
        if split is not None:
            return split
    return None


class SplitCache:
    """Per gateway process: each prompt's split under the stamp it was read with (`PromptRefs.splits`)."""

    def __init__(self):
        self.entries: dict[int, tuple[str, Split | None]] = {}

    def clear(self) -> None:
        self.entries.clear()

    async def split(self, prompt_id: int, stamp: str) -> Split | None:
        cached = self.entries.get(prompt_id)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        split = await sync_to_async(split_for)(prompt_id)  # once per stamp and process
        if len(self.entries) >= 10_000:
            self.entries.clear()
        self.entries[prompt_id] = (stamp, split)
        return split

    async def route(self, target, stamp: str | None, data: dict, metadata: dict, tenant: str,
                    lookup: Callable[..., Awaitable]):
        """The arm of a running experiment on this target's prompt and label that this request's unit is assigned
        to: its target (`lookup(name, label, version=, stamp=)` for another label or version; its model), carrying
        `experiment_id`, `arm` and the unit's key for the usage row; else `target` itself. On any doubt, the control."""
        if stamp is None:
            return target
        try:
            split = await self.split(target.prompt_id, stamp)
        except Exception:
            log.exception("the experiment split of prompt %s could not be read: control", target.name)
            return target
        if split is None or split.control_label != target.label:
            return target
        unit = unit_of(split, data, metadata, tenant)
        if not unit:
            return target
        arm = assign(split.arms, split.salt, unit)
        chosen = target
        if arm.version is not None or (arm.label and arm.label != target.label):
            chosen = await lookup(target.name, arm.label, version=arm.version, stamp=stamp)
            if chosen is None or chosen.team_id != target.team_id:
                return target  # the arm's label or version is gone: control, not attributed
        return replace(chosen, model=arm.model or chosen.model, experiment_id=split.experiment_id, arm=arm.key,
                       unit=unit_key(split.experiment_id, unit))
