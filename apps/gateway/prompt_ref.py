"""Prompt by reference: `model: "prompt:support/refund-policy-qa@production"` calls the catalog's prompt (ADR 0079).

    {"model": "prompt:NAME[@LABEL]",            LABEL defaults to production
     "metadata": {"customer": "ACME", ...},     the template's variables (strings; `tenant` stays the tenant)
     "messages": [...]}                         optional: appended after the rendered messages

The reference is resolved through the catalog's one resolve path (`apps.prompts.resolve.resolve_cached`) and
kept per process under the prompt's stamp: every request reads the stamp (one Redis GET) and rebuilds only
when it moved, so a label move reaches the next request in every process and a warm request reads no
PostgreSQL. The payload is rendered without a database read (`render_payload`); the version's model
(`config.model`, else PORTAL_DEFAULT_CHAT_MODEL) and the parameters its config sets (temperature, max_tokens,
response_format, tools) replace the client's; other client parameters pass. The key's allowed aliases apply to
that model. A key reaches its own team's prompts only. What may serve the prompt is asked at most once per
GATEWAY_ADMISSION_TTL_SECONDS per prompt and process, and again at once when the gateway stamp moves: llm's call
switches for the prompt (incidents' feature off → 423 `incident`; stricter filters → the guardrail policy of the
request raised, ADR 0122), then the catalog's resolve guards (the reviews kill switch).

Errors (OpenAI's shape): unknown prompt or label → 404 model_not_found; a missing or invalid variable → 400
naming it; a killed prompt → 423 with the guard's reason; a guard that fails → 503 (fail closed).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import Http404

from apps.core.stamped_cache import stamp_aread
from apps.costs.services import UsageContext
from apps.gateway import splits, wire
from apps.gateway.keys import KeyInfo
from apps.gateway.wire import GatewayError
from apps.llm.switches import FILTERS, CallScope, CallSwitch, switch_for_scope
from apps.prompts import selectors as prompt_selectors
from apps.prompts.models import PRODUCTION
from apps.prompts.registry import ResolveTarget, resolve_guards
from apps.prompts.rendering import coerce_variables, render_payload
from apps.prompts.resolve import resolve_cached, stamp_key
from apps.prompts.templating import RenderFailed

log = logging.getLogger(__name__)
PREFIX = "prompt:"
OWN_METADATA = frozenset({"tenant"})  # metadata keys the gateway reads itself: never template variables
# What a version's config sets for every call made with it (the client's own values give way).
VERSION_PARAMETERS = ("temperature", "max_tokens", "response_format", "tools")
_CACHE_MAX = 10_000


@dataclass(frozen=True)
class PromptTarget:
    """One resolved reference: plain values, safe to keep across requests."""

    name: str
    label: str
    prompt_id: int
    team_id: int
    version_number: int
    model: str
    parameters: dict
    payload: dict
    experiment_id: int | None = None  # the online experiment (splits.py) this request was assigned in
    arm: str = ""
    unit: str = ""  # the keyed hash of the unit it was assigned by (splits.unit_key)
    cache: bool | dict | None = None  # the version's response-cache opt-in (config "cache"; gateway/cache.py)

    @classmethod
    def of(cls, resolved, label: str) -> PromptTarget:
        payload = json.loads(resolved.body)
        config = payload.get("config") or {}
        parameters = {k: config[k] for k in VERSION_PARAMETERS if config.get(k) is not None}
        if not isinstance(parameters.get("response_format", {}), dict):
            parameters.pop("response_format")
        return cls(name=resolved.prompt_name, label=label, prompt_id=resolved.prompt_id, team_id=resolved.team_id,
                   version_number=resolved.version_number,
                   model=str(config.get("model") or settings.PORTAL_DEFAULT_CHAT_MODEL), parameters=parameters,
                   payload=payload, cache=config.get("cache"))


def parse_reference(model: str) -> tuple[str, str]:
    """"prompt:NAME[@LABEL]" -> (NAME, LABEL); the label defaults to production."""
    name, _, label = model[len(PREFIX):].strip().partition("@")
    name, label = name.strip(), (label.strip() or PRODUCTION)
    if not name:
        raise GatewayError(400, "Name the prompt: model 'prompt:NAME@LABEL' (e.g. prompt:support/faq@production).",
                           code="invalid_prompt_reference", param="model")
    return name, label


def not_found(name: str, label: str) -> GatewayError:
    return GatewayError(404, f"No prompt {name!r} with a label {label!r} that this key may use.",
                        code="model_not_found", param="model")


class PromptRefs:
    """The front door's prompt references, per process: resolved targets under their stamps, guard answers."""

    def __init__(self):
        self.targets: dict[tuple[str, str], tuple[str, PromptTarget | None]] = {}
        self.guarded: dict[int, tuple[float, bytes, PromptVerdict]] = {}
        self.splits = splits.SplitCache()  # online experiments: each prompt's split, under its stamp

    def clear(self) -> None:
        self.targets.clear()
        self.guarded.clear()
        self.splits.clear()

    async def prepare(self, data: dict, info: KeyInfo, tenant: str = "") -> PromptTarget | None:
        """None unless `data["model"]` is a prompt reference; else resolve and render it and rewrite `data`
        (model, messages, the version's parameters) in place, for `wire.parse_chat`."""
        model = data.get("model")
        if not isinstance(model, str) or not model.strip().startswith(PREFIX):
            return None
        name, label = parse_reference(model)
        target = await self.lookup(name, label)
        if target is None or target.team_id != info.team_id:
            raise not_found(name, label)
        metadata = wire.metadata_of(data)
        stamp = self.targets.get((name, label), (None,))[0]  # the stamp `lookup` just read
        target = await self.splits.route(target, stamp, data, metadata, tenant, self.lookup)  # an experiment's arm
        variables = coerce_variables({k: v for k, v in metadata.items() if k not in OWN_METADATA},
                                     target.payload.get("variables_schema"))
        try:
            rendered = render_payload(target.payload, variables, allow_extra=True)
        except RenderFailed as exc:
            first = exc.problems[0]
            param = f"metadata.{first.variable}" if first.variable else "metadata"
            raise GatewayError(400, f"{target.name} v{target.version_number}: {exc}", code=first.kind, param=param)
        messages = data.get("messages") or []
        if not isinstance(messages, list):
            raise GatewayError(400, "messages must be a list (appended after the prompt's messages).",
                               param="messages", code="invalid_messages")
        data["model"] = target.model
        data["messages"] = rendered.as_messages() + messages
        if "max_tokens" in target.parameters:
            data.pop("max_completion_tokens", None)
        data.update(target.parameters)
        return target

    async def admit(self, target: PromptTarget | None, context: UsageContext, stamp: bytes = b"") -> dict | None:
        """Attribute the call to the version (its usage row carries it), then ask what may serve it (423: a switch's
        or a resolve guard's refusal); the guardrail fields its switches require (for guard.screen_for), or None.
        Asked again after GATEWAY_ADMISSION_TTL_SECONDS or when the gateway `stamp` moved."""
        if target is None:
            return None
        context.prompt_name, context.prompt_version = target.name, target.version_number
        context.experiment_id, context.experiment_arm = target.experiment_id, target.arm
        context.experiment_unit = target.unit
        now = time.monotonic()
        cached = self.guarded.get(target.prompt_id)
        if cached is not None and cached[1] == stamp and now - cached[0] < settings.GATEWAY_ADMISSION_TTL_SECONDS:
            verdict = cached[2]
        else:
            try:
                verdict = await sync_to_async(guard_check)(target)
            except Exception:
                log.exception("a resolve guard failed for prompt %s", target.name)
                raise GatewayError(503, "Could not check whether this prompt may be served; try again.",
                                   code="guard_failed")
            if len(self.guarded) >= _CACHE_MAX:
                self.guarded.clear()
            self.guarded[target.prompt_id] = (now, stamp, verdict)
        if verdict.refusal:
            code, reason, switch_id = verdict.refusal
            raise GatewayError(423, reason, code=code, param="model", switch_id=switch_id)
        for label, version, switch_id in verdict.serves:  # a rollback: production serves this version because of it
            if (label, version) == (target.label, target.version_number):
                context.switch_id = switch_id
        return verdict.policy

    async def lookup(self, name: str, label: str, *, version: int | None = None,
                     stamp: str | None = None) -> PromptTarget | None:
        """The target under the prompt's current stamp (`stamp`: just read by the caller): from this process when
        it has not moved, else through the catalog's resolve path (Redis, PostgreSQL on its miss). None: no such
        prompt, label or version."""
        stamp = stamp if stamp is not None else await stamp_aread(stamp_key(name))
        selector = label if version is None else f"#{version}"
        entry = self.targets.get((name, selector))
        if stamp is not None and entry is not None and entry[0] == stamp:
            return entry[1]
        try:
            resolved = await sync_to_async(resolve_cached)(name, label=label if version is None else None,
                                                           version=version)
            target = PromptTarget.of(resolved, label)
        except Http404:
            target = None
        except RenderFailed as exc:  # a broken include: the prompt's problem, said as the catalog says it
            raise GatewayError(409, f"The prompt's includes cannot be resolved: {exc}", code="prompt_unresolvable",
                               param="model")
        if stamp is not None:
            if len(self.targets) >= _CACHE_MAX:
                self.targets.clear()  # a flood of unknown names must not grow memory
            self.targets[(name, selector)] = (stamp, target)
        return target


@dataclass(frozen=True)
class PromptVerdict:
    """What may serve a prompt now: `refusal` (code, reason, the switch refusing or None) or None; `policy`: the
    guardrail fields its switches require, as a policy provider answers (guard.Policy.stricter), or None."""

    refusal: tuple[str, str, int | None] | None = None
    policy: dict | None = None
    serves: tuple[tuple[str, int, int], ...] = ()  # (label, version, switch): served so because of a switch


def _policy_of(switch: CallSwitch | None) -> dict | None:
    """A call switch's filters as the gateway's guardrail fields (the same values), with the switches behind them."""
    if switch is None or not switch.filters:
        return None
    fields = {f"guard_{name}": getattr(switch, name) for name, order in FILTERS.items()
              if getattr(switch, name) != order[0]}
    return {**fields, "switch_ids": {f"guard_{name}": switch_id for name, switch_id in switch.filter_ids}}


def guard_check(target: PromptTarget) -> PromptVerdict:
    """llm's call switches for this prompt (a feature off refuses with 423 `incident`; stricter filters raise the
    policy — one check with the portal's own calls of the prompt, apps/llm/switches.py), then the resolve guards
    (423 `prompt_not_served`). Sync: may query."""
    switch = switch_for_scope(CallScope(prompt_name=target.name))
    if switch is not None and switch.refuse:
        return PromptVerdict(refusal=(switch.code, switch.refuse, switch.switch_id))
    resolve_target = ResolveTarget(target.prompt_id, target.name, target.team_id, target.version_number, target.label)
    for _key, guard in resolve_guards():
        reason = guard(resolve_target)
        if reason:
            return PromptVerdict(refusal=("prompt_not_served", reason, None), policy=_policy_of(switch))
    return PromptVerdict(policy=_policy_of(switch), serves=switch.serves if switch is not None else ())


def model_names(info: KeyInfo) -> list[tuple[str, str]]:
    """`prompt:NAME@LABEL` for each label of the key's team's prompts whose model the key may use (sync)."""
    return [(f"{PREFIX}{name}@{label}", "prompt") for name, label, model in
            prompt_selectors.team_label_models(team_id=info.team_id)
            if info.allows(model or settings.PORTAL_DEFAULT_CHAT_MODEL)]
