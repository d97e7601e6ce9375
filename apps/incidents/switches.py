"""The four switches besides feature off and rate limit (ADR 0081), each acting through a lower app's registry
or service, so the gateway and the portal's own calls obey alike. Registered as kinds of `mitigations.py` (one
apply / undo / expiry / audit path) and into the lower apps' registries by `apps/incidents/hooks.py`.

- **model fallback** (`model_fallback`): an alias (or a catalog model name) served by another alias/model or
  pinned to one deployment; or one deployment left out of its alias, or replaced. Through llm's reroutes
  (`apps/llm/routing.py` `register_reroutes`): applied and undone with `routes_changed()`, so every process
  (gateway and web) rebuilds its routes within LLM_ROUTES_CHECK_SECONDS. One call path: `calls.chat` /
  `acalls.achat` resolve through the same routes.
- **retrieval disabled** (`retrieval_disabled`): a collection, or every collection linked to a use case, stops
  retrieving (`apps/rag/switches.py` `register_retrieval_switch`, asked by `retrieve()` under rag's stamp, which
  apply and undo replace); answers refuse
  with the message or answer without passages with the message as a disclaimer.
- **stricter filters** (`stricter_filters`): guardrail fields raised for a key, a feature or a use case through
  the gateway's `register_guard_policy`; applied and undone with `admission_changed()` (the gateway stamp).
- **prompt rollback** (`prompt_rollback`): production moved to the previous (or a chosen) version with prompts'
  `label_move_now` (gate checks run and noted, a `prompt.label.move` audit event). Undo moves it forward again
  only if nobody moved it since; otherwise the switch is closed and the timeline says why nothing moved.

At expiry none of these four is put back by itself: the applier and the commander are reminded (like a feature
off), since turning a mitigation off mid-incident by the clock is worse than a reminder.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import ValidationError

from apps.gateway.guard import ORDER
from apps.gateway.registry import AdmissionTarget
from apps.incidents.mitigations import (
    SwitchKind,
    call_covers,
    gateway_target,
    matches,
    prompt_target,
    register_kind,
    traffic_changed,
    whole,
)
from apps.incidents.models import Incident, Mitigation, MitigationKind
from apps.incidents.services import clean_text
from apps.llm.models import Deployment, Model, ModelAlias
from apps.llm.routing import Reroute, deployment_key, routes_changed
from apps.llm.switches import FILTERS, CallScope, CallSwitch
from apps.prompts.models import PRODUCTION, Label, LabelEvent, Prompt, PromptVersion
from apps.prompts.services import label_move_now
from apps.rag.models import Collection
from apps.rag.switches import ANSWER_MODES, REFUSE, RetrievalOff, retrieval_switches_changed
from apps.reviews.models import UseCase, UseCaseCollection

RETRIEVAL_MESSAGE = ("This assistant cannot search its documents right now while we handle an incident: "
                     "answers are not based on them.")
FILTER_FIELDS = ("guard_input_pii", "guard_injection", "guard_output")


def _telling(changed: Callable[[], None]) -> dict:
    """{"apply", "undo"} of a switch whose only act is to tell the lower app its answer changed: `changed()` moves
    that app's stamp after the commit (nothing to call for a switch asked on every use)."""

    def apply(mitigation: Mitigation, actor) -> dict:
        changed()
        return mitigation.params

    def undo(mitigation: Mitigation, actor) -> str:
        changed()
        return ""

    return {"apply": apply, "undo": undo}


def _active(kind: str):
    return Mitigation.objects.filter(kind=kind, undone_at__isnull=True)


# -- model fallback -------------------------------------------------------------------------------------------

def _deployment(value, name: str) -> Deployment:
    deployment_id = whole(name, value, required=True)
    deployment = Deployment.objects.select_related("alias", "model").filter(pk=deployment_id).first()
    if deployment is None:
        raise ValidationError({name: f"No deployment #{deployment_id}."})
    return deployment


def _deployment_label(d: Deployment) -> str:
    return f"deployment {d.alias.name}/{d.model.name} (#{d.pk})"


def _name_kind(name: str) -> str | None:
    """The kind (chat, embedding) an alias or catalog model of this name serves, None when there is none."""
    alias = ModelAlias.objects.filter(name=name).values_list("kind", flat=True).first()
    return alias or Model.objects.filter(name=name).values_list("kind", flat=True).first()


def _fallback_target(target: dict, incident: Incident):
    scope = target.get("scope")
    if scope == "alias":
        name = str(target.get("name") or "").strip()
        if not name or _name_kind(name) is None:
            raise ValidationError({"target": f"No alias or catalog model named “{name[:120]}”."})
        return {"scope": "alias", "name": name}, f"alias {name}", incident.team
    if scope == "deployment":
        deployment = _deployment(target.get("deployment_id"), "target")
        return {"scope": "deployment", "deployment_id": deployment.pk}, _deployment_label(deployment), incident.team
    raise ValidationError({"target": "A model fallback acts on: alias, deployment."})


def _fallback_params(params: dict, target: dict) -> dict:
    to = str(params.get("to") or "").strip()
    to_deployment = params.get("to_deployment_id")
    if to and to_deployment not in (None, ""):
        raise ValidationError({"to": "Name either an alias/model or a deployment to fall back to, not both."})
    if target["scope"] == "alias":
        kind = _name_kind(target["name"])
        if not to and to_deployment in (None, ""):
            raise ValidationError({"to": "Name the alias or model (or the deployment) to serve instead."})
    else:
        skipped = Deployment.objects.select_related("alias").get(pk=target["deployment_id"])
        kind = skipped.alias.kind
        others = skipped.alias.deployments.filter(is_active=True).exclude(pk=skipped.pk)
        if not to and to_deployment in (None, "") and not others.exists():
            raise ValidationError({"to": f"{skipped.alias.name} has no other active deployment: name one to serve "
                                         "instead."})
    clean: dict = {}
    if to:
        to_kind = _name_kind(to)
        if to_kind is None:
            raise ValidationError({"to": f"No alias or catalog model named “{to[:120]}”."})
        if to == target.get("name"):
            raise ValidationError({"to": "Fall back to something else than the alias itself."})
        if to_kind != kind:
            raise ValidationError({"to": f"{to} serves {to_kind} calls, not {kind}."})
        clean["to"] = to
    elif to_deployment not in (None, ""):
        deployment = _deployment(to_deployment, "to_deployment_id")
        if not deployment.is_active:
            raise ValidationError({"to_deployment_id": f"Deployment #{deployment.pk} is disabled."})
        if deployment.alias.kind != kind:
            raise ValidationError({"to_deployment_id": f"Deployment #{deployment.pk} serves {deployment.alias.kind} "
                                                       f"calls, not {kind}."})
        if deployment.pk == target.get("deployment_id"):
            raise ValidationError({"to_deployment_id": "Fall back to another deployment."})
        clean["to_deployment_id"] = deployment.pk
        clean["to_label"] = _deployment_label(deployment).removeprefix("deployment ")
    return clean


def _fallback_describe(mitigation: Mitigation) -> str:
    p = mitigation.params
    if p.get("to"):
        return f" (served by {p['to']})"
    if p.get("to_deployment_id"):
        return f" (served by {p.get('to_label') or p['to_deployment_id']})"
    return " (left out of its alias)"


def reroutes_now() -> dict[str, Reroute]:
    """llm's reroutes provider: every active model fallback as a Reroute, keyed as routing expects."""
    table: dict[str, Reroute] = {}
    for pk, target, params, incident_id in _active(MitigationKind.MODEL_FALLBACK).order_by("applied_at") \
            .values_list("pk", "target", "params", "incident_id"):
        reroute = Reroute(to=params.get("to", ""), deployment_id=params.get("to_deployment_id"),
                          why=f"incident INC-{incident_id}", switch_id=pk)
        key = target.get("name") if target.get("scope") == "alias" else deployment_key(target.get("deployment_id"))
        table.setdefault(key, reroute)
    return table


# -- retrieval disabled ---------------------------------------------------------------------------------------

def _retrieval_target(target: dict, incident: Incident):
    scope = target.get("scope")
    if scope == "collection":
        collection_id = whole("target", target.get("collection_id"), required=True)
        collection = Collection.objects.select_related("team").filter(pk=collection_id).first()
        if collection is None:
            raise ValidationError({"target": f"No collection #{collection_id}."})
        return {"scope": "collection", "collection_id": collection.pk}, f"collection {collection.name}", \
            collection.team
    if scope == "use_case":
        use_case_id = whole("target", target.get("use_case_id"), required=True)
        use_case = UseCase.objects.select_related("team").filter(pk=use_case_id).first()
        if use_case is None:
            raise ValidationError({"target": f"No use case #{use_case_id}."})
        return {"scope": "use_case", "use_case_id": use_case.pk}, f"collections of use case {use_case.title}", \
            use_case.team
    raise ValidationError({"target": "Retrieval is disabled for: a collection, or a use case's collections."})


def _retrieval_params(params: dict, target: dict) -> dict:
    answer = params.get("answer") or REFUSE
    if answer not in ANSWER_MODES:
        raise ValidationError({"answer": f"One of: {', '.join(ANSWER_MODES)}."})
    return {"answer": answer, "message": clean_text("message", params.get("message"), limit=300) or RETRIEVAL_MESSAGE}


def _retrieval_describe(mitigation: Mitigation) -> str:
    how = "refused" if mitigation.params.get("answer") == REFUSE else "answered without retrieval"
    return f" ({how}: “{mitigation.params.get('message', '')}”)"


def retrieval_switch(collection_id: int, team_id: int) -> RetrievalOff | None:
    """rag's retrieval switch: the first active "retrieval disabled" on this collection or on a use case it
    serves. One query (two when a use case is switched)."""
    rows = list(_active(MitigationKind.RETRIEVAL_DISABLED).order_by("applied_at")
                .values_list("pk", "target", "params", "incident_id"))
    use_cases = [t["use_case_id"] for _, t, _, _ in rows if t.get("scope") == "use_case"]
    linked = set(UseCaseCollection.objects.filter(use_case_id__in=use_cases, collection_id=collection_id)
                 .values_list("use_case_id", flat=True)) if use_cases else set()
    for pk, target, params, incident_id in rows:
        if target.get("collection_id") == collection_id or target.get("use_case_id") in linked:
            return RetrievalOff(message=f"{params.get('message') or RETRIEVAL_MESSAGE} (incident INC-{incident_id})",
                                answer=params.get("answer") or REFUSE, switch_id=pk)
    return None


# -- stricter filters -----------------------------------------------------------------------------------------

def _filters_target(target: dict, incident: Incident):
    return gateway_target(MitigationKind.STRICTER_FILTERS, target)


def _filters_params(params: dict, target: dict) -> dict:
    clean = {}
    for name in FILTER_FIELDS:
        value = params.get(name)
        if value in (None, ""):
            continue
        stricter = ORDER[name][1:]  # anything above the weakest ("allow", "off")
        if value not in stricter:
            raise ValidationError({name: f"One of: {', '.join(stricter)}."})
        clean[name] = value
    if not clean:
        raise ValidationError({"guard_input_pii": "Raise at least one filter: PII in the input, injection or the "
                                                  "output scan."})
    return clean


def _filters_describe(mitigation: Mitigation) -> str:
    return " (" + ", ".join(f"{name.removeprefix('guard_').replace('_', ' ')} → {value}"
                            for name, value in mitigation.params.items() if name in FILTER_FIELDS) + ")"


def guard_policy(admission: AdmissionTarget) -> dict[str, str] | None:
    """The gateway's `incident` guardrail policy: the fields of every active "stricter filters" covering this
    key (its key, feature or use case), the stricter value of each field, and the switch behind each
    (`switch_ids`: what marks the calls it acts on)."""
    policy: dict[str, str] = {}
    ids: dict[str, int] = {}
    for pk, target, params in _active(MitigationKind.STRICTER_FILTERS).order_by("applied_at") \
            .values_list("pk", "target", "params"):
        if not matches(target, admission):
            continue
        for name in FILTER_FIELDS:
            value = params.get(name)
            if value in ORDER[name] and (name not in policy or ORDER[name].index(value) >
                                         ORDER[name].index(policy[name])):
                policy[name], ids[name] = value, pk
    return {**policy, "switch_ids": ids} if policy else None


def call_filters(scope: CallScope) -> CallSwitch | None:
    """llm's `incident_filters` call switch: the stricter filters of every active one covering this portal call."""
    rows = list(_active(MitigationKind.STRICTER_FILTERS).order_by("applied_at").values_list("pk", "target", "params"))
    if not rows:
        return None
    covers = call_covers(scope, [target for _, target, _ in rows])
    answer = None
    for pk, target, params in rows:
        if covers(target):
            raised = {name.removeprefix("guard_"): params[name] for name in FILTER_FIELDS
                      if params.get(name) in FILTERS[name.removeprefix("guard_")]}
            this = CallSwitch(**raised, filter_ids=tuple((name, pk) for name in sorted(raised)))
            answer = this if answer is None else answer.stricter(this)
    return answer


# -- prompt rollback ------------------------------------------------------------------------------------------

def _prompt_target(target: dict, incident: Incident):
    if target.get("scope") != "prompt":
        raise ValidationError({"target": "A prompt rollback acts on: prompt."})
    return prompt_target(target)


def _production(prompt_id: int) -> PromptVersion | None:
    label = Label.objects.filter(prompt_id=prompt_id, name=PRODUCTION).select_related("version").first()
    return label.version if label else None


def _rollback_params(params: dict, target: dict) -> dict:
    prompt_id = target["prompt_id"]
    current = _production(prompt_id)
    if current is None:
        raise ValidationError({"to_version": "This prompt has no production version to roll back."})
    number = whole("to_version", params.get("to_version"), required=False)
    if number is None:
        previous = LabelEvent.objects.filter(prompt_id=prompt_id, label=PRODUCTION, to_version=current,
                                             from_version__isnull=False).order_by("-occurred_at", "-id").first()
        if previous is None:
            raise ValidationError({"to_version": f"Production has pointed at v{current.number} from the start: "
                                                 "choose the version to roll back to."})
        number = previous.from_version.number
    if not PromptVersion.objects.filter(prompt_id=prompt_id, number=number).exists():
        raise ValidationError({"to_version": f"No version {number} of this prompt."})
    if number == current.number:
        raise ValidationError({"to_version": f"Production points at v{number} already."})
    return {"from_version": current.number, "to_version": number}


def _version(prompt_id: int, number: int) -> PromptVersion:
    return PromptVersion.objects.select_related("prompt").get(prompt_id=prompt_id, number=number)


def _reason(mitigation: Mitigation, what: str) -> str:
    return f"{what} from incident {mitigation.incident.reference}" + \
        (f": {mitigation.reason}" if mitigation.reason else "")


def _rollback_apply(mitigation: Mitigation, actor) -> dict:
    params = mitigation.params
    version = _version(mitigation.target["prompt_id"], params["to_version"])
    moved = label_move_now(prompt=version.prompt, version=version, actor=actor,
                           reason=_reason(mitigation, "prompt rollback"))
    event = moved.request.label_events.order_by("-id").values_list("pk", flat=True).first()
    traffic_changed()  # the gateway asks again which version production serves because of a switch (its marks)
    return {**params, "request": moved.request.pk, "label_event": event, "gates_overridden": moved.overridden}


def _rollback_undo(mitigation: Mitigation, actor) -> str:
    params = mitigation.params
    prompt_id = mitigation.target["prompt_id"]
    last = LabelEvent.objects.filter(prompt_id=prompt_id, label=PRODUCTION).order_by("-occurred_at", "-id") \
        .select_related("to_version").first()
    if last is None or last.pk != params.get("label_event"):
        now = f"v{last.to_version.number}, moved by {last.actor_label}" if last else "unknown"
        return (f" Production was moved since (now {now}): it is left as it is; move it on the prompt's page "
                "if needed.")
    traffic_changed()
    version = _version(prompt_id, params["from_version"])
    label_move_now(prompt=version.prompt, version=version, actor=actor, reason=_reason(mitigation, "undo of a "
                                                                                        "prompt rollback"))
    return f" Production is back on v{version.number}."


def call_rollbacks(scope: CallScope) -> CallSwitch | None:
    """llm's `incident_rollback` call switch: for a prompt rolled back now, production serves the version rolled
    back to because of the switch (`CallSwitch.serves`): the gateway marks the calls it resolves that way."""
    if not scope.prompt_name:
        return None
    rows = list(_active(MitigationKind.PROMPT_ROLLBACK).values_list("pk", "target", "params"))
    if not rows:
        return None
    prompt_ids = set(Prompt.objects.filter(pk__in=[t.get("prompt_id") for _, t, _ in rows], name=scope.prompt_name)
                     .values_list("pk", flat=True))
    serves = tuple((PRODUCTION, params["to_version"], pk) for pk, target, params in rows
                   if target.get("prompt_id") in prompt_ids and params.get("to_version"))
    return CallSwitch(serves=serves) if serves else None


def _rollback_describe(mitigation: Mitigation) -> str:
    p = mitigation.params
    gates = p.get("gates_overridden") or []
    noted = f"; gates that would have blocked: {', '.join(gates)}" if gates else ""
    return f" (production v{p.get('from_version')} → v{p.get('to_version')}{noted})"


def register() -> None:
    """The four kinds, into mitigations' table (hooks.py calls this once, with the lower apps' registries)."""
    register_kind(MitigationKind.MODEL_FALLBACK, SwitchKind(
        scopes=("alias", "deployment"), target=_fallback_target, params=_fallback_params,
        **_telling(routes_changed), describe=_fallback_describe))
    register_kind(MitigationKind.RETRIEVAL_DISABLED, SwitchKind(
        scopes=("collection", "use_case"), target=_retrieval_target, params=_retrieval_params,
        **_telling(retrieval_switches_changed), describe=_retrieval_describe))
    register_kind(MitigationKind.STRICTER_FILTERS, SwitchKind(
        scopes=("key", "feature", "use_case", "prompt"), target=_filters_target, params=_filters_params,
        **_telling(traffic_changed), describe=_filters_describe))
    register_kind(MitigationKind.PROMPT_ROLLBACK, SwitchKind(
        scopes=("prompt",), target=_prompt_target, params=_rollback_params, apply=_rollback_apply,
        undo=_rollback_undo, describe=_rollback_describe))
