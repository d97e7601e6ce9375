"""REST API of the prompt catalog (/api/v1/prompts). Names keep their slashes:
`GET /api/v1/prompts/support/triage-summary/resolve?label=production`.

Non-prompt routes live under `/api/v1/prompts/-/…` ("-" can never start a prompt name).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from ninja import Field, Query, Router, Schema, Status

from apps.accounts.models import ApiToken
from apps.accounts.permissions import Action, can
from apps.accounts.selectors import team_for_api
from apps.core.api_errors import ApiProblem, errors
from apps.prompts import selectors, services
from apps.prompts.content import Draft
from apps.prompts.diff import version_diff
from apps.prompts.models import PRODUCTION, PromotionRequest, Prompt, PromptVersion
from apps.prompts.registry import ResolveTarget, resolve_guards
from apps.prompts.rendering import render_version
from apps.prompts.resolve import etag_matches, resolve_cached
from apps.prompts.templating import RenderFailed
from apps.prompts.yaml_io import ImportFailed, export_team, import_team

router = Router(tags=["prompts"])
NAME = "{promptname:name}"


# --- schemas ---------------------------------------------------------------------------------------------

class Message(Schema):
    role: str
    content: str


class VersionIn(Schema):
    template: str = Field("", description="Jinja2 template (text prompts)")
    messages: list[Message] = Field(default_factory=list, description="Messages (chat prompts)")
    variables_schema: dict[str, Any] | None = Field(None, description="JSON schema of the variables object")
    config: dict[str, Any] = Field(default_factory=dict,
                                   description="model, temperature, max_tokens, top_p, stop, response_format, tools")
    commit_message: str = ""


class PromptIn(Schema):
    name: str = Field(..., examples=["support/triage-summary"])
    team: str = Field(..., description="Slug of the owning team")
    type: str = Field("text", description="text or chat")
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    version: VersionIn | None = Field(None, description="The first version")


class PromptOut(Schema):
    name: str
    team: str
    type: str
    description: str
    tags: list[str]
    latest_version: int
    production_version: int | None = None
    updated_at: datetime


class VersionOut(Schema):
    number: int
    content_hash: str
    template: str
    messages: list[dict]
    variables: list[str]
    variables_schema: dict[str, Any] | None
    config: dict[str, Any]
    commit_message: str
    author: str
    created_at: datetime
    labels: list[str] = Field(default_factory=list)


class VersionCreated(Schema):
    created: bool
    message: str
    version: VersionOut
    warnings: list[str] = Field(default_factory=list, description="e.g. a model the catalog does not have")


class LabelOut(Schema):
    name: str
    version: int
    protected: bool
    updated_at: datetime
    updated_by: str


class LabelSetIn(Schema):
    version: int
    reason: str = ""


class LabelEventOut(Schema):
    label: str
    from_version: int | None
    to_version: int
    actor: str
    reason: str
    promotion_request: int | None
    occurred_at: datetime


class LabelAtOut(Schema):
    label: str
    at: datetime
    version: int | None


class PromotionIn(Schema):
    version: int
    reason: str = ""
    label: str = PRODUCTION


class CheckOut(Schema):
    key: str
    label: str
    status: str
    blocking: bool
    summary: str
    checked_at: datetime


class ApprovalOut(Schema):
    user: str
    decision: str
    comment: str
    created_at: datetime


class PromotionOut(Schema):
    id: int
    prompt: str
    label: str
    kind: str
    status: str
    from_version: int | None
    to_version: int
    requested_by: str
    reason: str
    created_at: datetime
    closed_at: datetime | None
    expedited: bool
    checks: list[CheckOut]
    approvals: list[ApprovalOut]


class RenderIn(Schema):
    variables: dict[str, Any] = Field(default_factory=dict)
    label: str | None = Field(None, description="Render the version this label points at (default production)")
    version: int | None = None
    allow_extra: bool = Field(False, description="Ignore variables the template does not use")


class RenderOut(Schema):
    name: str
    version: int
    type: str
    text: str | None = None
    messages: list[dict] | None = None


class ResolveOut(Schema):
    name: str
    type: str
    version: int
    label: str | None
    content_hash: str
    template: str | None = Field(None, description="Text prompts: includes inlined, ready to render")
    messages: list[dict] | None = Field(None, description="Chat prompts: includes inlined, ready to render")
    variables: list[str]
    variables_schema: dict[str, Any] | None
    config: dict[str, Any]
    references: list[dict]


class ImportResult(Schema):
    dry_run: bool
    created_prompts: list[str]
    created_versions: list[str]
    unchanged: list[str]
    labels_moved: list[str]
    notes: list[str]


# --- helpers ---------------------------------------------------------------------------------------------

def _actor(request):
    return request.auth


def _version_out(version: PromptVersion, labels: list[str] | None = None) -> VersionOut:
    return VersionOut(number=version.number, content_hash=version.content_hash, template=version.template,
                      messages=version.messages, variables=version.variables,
                      variables_schema=version.variables_schema, config=version.config,
                      commit_message=version.commit_message, author=version.author_label,
                      created_at=version.created_at, labels=labels or [])


def _promotion_out(req: PromotionRequest) -> PromotionOut:
    return PromotionOut(
        id=req.pk, prompt=req.prompt.name, label=req.label, kind=req.kind, status=req.status,
        from_version=req.from_version.number if req.from_version else None, to_version=req.to_version.number,
        requested_by=req.requester_label, reason=req.reason, created_at=req.created_at, closed_at=req.closed_at,
        expedited=req.expedited,
        checks=[CheckOut(key=r.key, label=r.label, status=r.status, blocking=r.blocking, summary=r.summary,
                         checked_at=r.checked_at) for r in selectors.latest_check_results(req)],
        approvals=[ApprovalOut(user=a.user.get_username(), decision=a.decision, comment=a.comment,
                               created_at=a.created_at) for a in req.approvals.select_related("user")],
    )


def _draft(kind: str, body: VersionIn) -> Draft:
    return Draft(kind=kind, template=body.template, messages=[m.model_dump() for m in body.messages],
                 variables_schema=body.variables_schema, config=body.config)


# --- catalog ---------------------------------------------------------------------------------------------

@router.get("", response=list[PromptOut], summary="List prompts you may see")
def prompt_list(request, q: str = "", team: str = "", tag: str = "", label: str = "", limit: int = 50,
                offset: int = Query(0, ge=0, le=1_000_000_000)):
    filters = selectors.CatalogFilters(q=q, team=team, tag=tag, label=label)
    rows = selectors.prompt_list(actor=_actor(request), filters=filters)[max(offset, 0):max(offset, 0) +
                                                                         min(max(limit, 1), 200)]
    return [PromptOut(name=p.name, team=p.team.slug, type=p.kind, description=p.description, tags=p.tags,
                      latest_version=p.latest_version_number, production_version=p.production_version,
                      updated_at=p.updated_at) for p in rows]


@router.post("", response={201: PromptOut, **errors(403, 404, 422)}, summary="Create a prompt (and its first version)")
def prompt_create(request, body: PromptIn):
    actor = _actor(request)
    team = team_for_api(actor=actor, slug=body.team, action=Action.CHANGE)
    draft = _draft(body.type, body.version) if body.version else None
    prompt = services.prompt_create(team=team, name=body.name, kind=body.type, description=body.description,
                                    tags=body.tags, actor=actor, draft=draft,
                                    commit_message=body.version.commit_message if body.version else "")
    return Status(201, PromptOut(name=prompt.name, team=team.slug, type=prompt.kind, description=prompt.description,
                          tags=prompt.tags, latest_version=prompt.latest_version_number, updated_at=prompt.updated_at))


@router.get("/-/promotion-requests/{int:pk}", response={200: PromotionOut, **errors(404)}, summary="A promotion request and its checks")
def promotion_detail(request, pk: int):
    return _promotion_out(selectors.promotion_request_get(actor=_actor(request), pk=pk))


@router.get("/-/export", response={200: None, **errors(404)}, summary="Export a team's prompts as YAML (for keeping them in git)",
            openapi_extra={"responses": {200: {"content": {"application/yaml": {}}}}})
def export(request, team: str):
    team_obj = team_for_api(actor=_actor(request), slug=team, action=Action.VIEW)
    response = HttpResponse(export_team(team_obj, actor=_actor(request)), content_type="application/yaml")
    response["Content-Disposition"] = f'attachment; filename="prompts-{team_obj.slug}.yaml"'
    return response


@router.post("/-/import", response={200: ImportResult, **errors(403, 404, 422)},
             summary="Import a team's prompts from YAML: validated first, written in one transaction",
             openapi_extra={"requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}}}}})
def import_(request, team: str, dry_run: bool = False):
    team_obj = team_for_api(actor=_actor(request), slug=team, action=Action.CHANGE)
    try:
        report = import_team(team_obj, request.body.decode("utf-8", errors="replace"), actor=_actor(request),
                             dry_run=dry_run)
    except ImportFailed as exc:
        raise ApiProblem(422, f"Nothing was imported: {len(exc.errors)} problem(s).",
                                      [{"field": e.where, "message": e.message} for e in exc.errors])
    return Status(200, report.as_dict())


# --- one prompt ------------------------------------------------------------------------------------------

@router.get(f"/{NAME}/resolve", response={200: ResolveOut, 304: None, **errors(404, 409, 422, 423, 503)},
            summary="The version a label (or number) points at, ready to render. ETag / If-None-Match → 304; "
                    "423 when a resolve guard (use case suspended or expired) refuses.")
def resolve(request, name: str, label: str | None = None, version: int | None = None):
    started = time.perf_counter()
    if label and version:
        raise ApiProblem(422, "Give label or version, not both.")
    label = None if version is not None else (label or PRODUCTION)
    actor = _actor(request)
    try:
        resolved = resolve_cached(name, label=label, version=version)
    except Http404:
        selectors.prompt_get(actor=actor, name=name)  # an unseen prompt is "no such prompt", whatever the label
        raise
    except RenderFailed as exc:
        selectors.prompt_get(actor=actor, name=name)
        raise ApiProblem(409, "The prompt's includes cannot be resolved.",
                                      [{"field": None, **p.as_dict()} for p in exc.problems])
    if not can(actor, Action.VIEW, Prompt(pk=resolved.prompt_id, team_id=resolved.team_id, name=name)):
        raise Http404(f"There is no prompt named {name!r}.")
    target = ResolveTarget(resolved.prompt_id, resolved.prompt_name, resolved.team_id, resolved.version_number,
                           resolved.label)
    for key, guard in resolve_guards():
        try:
            reason = guard(target)
        except Exception as exc:  # noqa: BLE001 - a broken guard fails closed: the kill switch must hold
            raise ApiProblem(503, f"Could not check whether this prompt may be served ({key}): "
                                          f"{type(exc).__name__}.")
        if reason:
            raise ApiProblem(423, reason, guard=key)
    timing = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
    if etag_matches(request.headers.get("If-None-Match"), resolved.etag):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(resolved.body, content_type="application/json")
    response["ETag"] = resolved.etag
    response["Cache-Control"] = "private, no-cache"
    response["Server-Timing"] = timing
    return response


@router.post(f"/{NAME}/render", response={200: RenderOut, **errors(404, 422)},
             summary="Render with variables; 422 names each missing/extra/invalid variable and template error")
def render(request, name: str, body: RenderIn):
    prompt = selectors.prompt_get(actor=_actor(request), name=name)
    if body.label and body.version:
        raise ApiProblem(422, "Give label or version, not both.")
    if body.version is not None:
        version = selectors.version_get(prompt=prompt, number=body.version)
    else:
        label = body.label or PRODUCTION
        version = PromptVersion.objects.select_related("prompt").filter(prompt=prompt, labels__name=label).first()
        if version is None:
            raise Http404(f"{prompt.name} has no label {label!r}.")
    try:
        rendered = render_version(version, body.variables, allow_extra=body.allow_extra)
    except RenderFailed as exc:
        raise ApiProblem(422, f"{len(exc.problems)} problem(s) rendering {version}.",
                                      [{"field": p.variable, **p.as_dict()} for p in exc.problems])
    return Status(200, RenderOut(name=prompt.name, version=version.number, type=rendered.kind, text=rendered.text,
                          messages=rendered.messages))


@router.get(f"/{NAME}/versions", response={200: list[VersionOut], **errors(404)}, summary="Versions, newest first")
def versions(request, name: str, limit: int = 50, offset: int = Query(0, ge=0, le=1_000_000_000)):
    prompt = selectors.prompt_get(actor=_actor(request), name=name)
    labels = selectors.labels_by_version(prompt)
    rows = selectors.version_list(prompt=prompt)[max(offset, 0):max(offset, 0) + min(max(limit, 1), 200)]
    return [_version_out(v, labels.get(v.number)) for v in rows]


@router.post(f"/{NAME}/versions", response={201: VersionCreated, 200: VersionCreated, **errors(403, 404, 422)},
             summary="Create a version (200 and created=false when identical to an existing one)")
def version_create(request, name: str, body: VersionIn):
    prompt = selectors.prompt_get(actor=_actor(request), name=name, action=Action.CHANGE)
    result = services.version_create(prompt=prompt, draft=_draft(prompt.kind, body),
                                     commit_message=body.commit_message, actor=_actor(request))
    labels = selectors.labels_by_version(prompt).get(result.version.number)
    return Status((201 if result.created else 200), VersionCreated(
        created=result.created, message=result.message, version=_version_out(result.version, labels),
        warnings=selectors.model_config_warnings(result.version.config)))


@router.get(f"/{NAME}/versions/{{int:number}}", response={200: VersionOut, **errors(404)}, summary="One version")
def version_detail(request, name: str, number: int):
    prompt = selectors.prompt_get(actor=_actor(request), name=name)
    return _version_out(selectors.version_get(prompt=prompt, number=number),
                        selectors.labels_by_version(prompt).get(number))


@router.get(f"/{NAME}/diff", response={200: dict, **errors(404)}, summary="Diff of two versions: template lines and config keys")
def diff(request, name: str, a: int, b: int):
    prompt = selectors.prompt_get(actor=_actor(request), name=name)
    return version_diff(selectors.version_get(prompt=prompt, number=a),
                        selectors.version_get(prompt=prompt, number=b)).as_dict()


@router.get(f"/{NAME}/labels", response={200: list[LabelOut], **errors(404)}, summary="Labels and the versions they point at")
def labels(request, name: str):
    prompt = selectors.prompt_get(actor=_actor(request), name=name)
    return [LabelOut(name=lb.name, version=lb.version.number, protected=services.is_protected(prompt, lb.name),
                     updated_at=lb.updated_at, updated_by=lb.updated_by_label)
            for lb in selectors.label_list(prompt=prompt)]


@router.put(f"/{NAME}/labels/{{label}}", response={200: LabelOut, **errors(403, 404, 422)},
            summary="Move an unprotected label (production and protected labels need a promotion request)")
def label_set(request, name: str, label: str, body: LabelSetIn):
    prompt = selectors.prompt_get(actor=_actor(request), name=name, action=Action.CHANGE)
    version = selectors.version_get(prompt=prompt, number=body.version)
    moved = services.label_set(prompt=prompt, label=label, version=version, actor=_actor(request),
                               reason=body.reason)
    return Status(200, LabelOut(name=moved.name, version=version.number, protected=False, updated_at=moved.updated_at,
                         updated_by=moved.updated_by_label))


@router.get(f"/{NAME}/labels/{{label}}/history", response={200: list[LabelEventOut], **errors(404)},
            summary="Every move of a label: who, when, from, to, why")
def label_history(request, name: str, label: str):
    prompt = selectors.prompt_get(actor=_actor(request), name=name)
    return [LabelEventOut(label=e.label, from_version=e.from_version.number if e.from_version else None,
                          to_version=e.to_version.number, actor=e.actor_label, reason=e.reason,
                          promotion_request=e.promotion_id, occurred_at=e.occurred_at)
            for e in selectors.label_history(prompt=prompt, label=label)]


@router.get(f"/{NAME}/labels/{{label}}/at", response={200: LabelAtOut, **errors(404)}, summary="What the label pointed at, at time T")
def label_at(request, name: str, label: str, t: datetime):
    prompt = selectors.prompt_get(actor=_actor(request), name=name)
    try:  # PostgreSQL takes offsets up to ±15:59 only; Python's go to ±23:59
        at = t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    except OverflowError:
        at = None
    if at is None or not 1 < at.year < 9999:
        raise ApiProblem(422, "Invalid input.", [{"field": "t", "message": "Give a time between the years 2 and "
                                                                           "9998 (in UTC).", "where": "query"}])
    found = selectors.label_version_at(prompt=prompt, label=label, at=at)
    return LabelAtOut(label=label, at=t, version=found.number if found else None)


@router.get(f"/{NAME}/promotions", response={200: list[PromotionOut], **errors(404)}, summary="Promotion requests of a prompt")
def promotions(request, name: str, status: str = ""):
    prompt = selectors.prompt_get(actor=_actor(request), name=name)
    return [_promotion_out(r) for r in selectors.promotion_request_list(actor=_actor(request), prompt=prompt,
                                                                        status=status)[:50]]


@router.post(f"/{NAME}/promotions", response={201: PromotionOut, **errors(403, 404, 422)},
             summary="Open a promotion (or rollback) request; gate checks run at once. Tokens with write scope may "
                     "open requests, never approve them.")
def promotion_open(request, name: str, body: PromotionIn):
    prompt = selectors.prompt_get(actor=_actor(request), name=name, action=Action.CHANGE)
    version = selectors.version_get(prompt=prompt, number=body.version)
    created = services.promotion_request_open(prompt=prompt, version=version, actor=_actor(request),
                                              reason=body.reason, label=body.label)
    return Status(201, _promotion_out(created))


@router.post("/-/promotion-requests/{int:pk}/approve", response={200: PromotionOut, **errors(403, 404, 422)},
             summary="Approve (people only: API tokens are refused)")
def promotion_approve(request, pk: int, comment: str = ""):
    actor = _actor(request)
    if isinstance(actor, ApiToken):
        raise PermissionDenied("API tokens cannot approve promotion requests: a person must, in the portal.")
    req = selectors.promotion_request_get(actor=actor, pk=pk, action=Action.CHANGE)
    services.promotion_request_approve(request=req, user=actor, comment=comment)
    req.refresh_from_db()
    return Status(200, _promotion_out(req))


@router.get(f"/{NAME}", response={200: PromptOut, **errors(404)}, summary="One prompt")
def prompt_detail(request, name: str):
    prompt = selectors.prompt_get(actor=_actor(request), name=name)
    production = prompt.labels.filter(name=PRODUCTION).values_list("version__number", flat=True).first()
    return PromptOut(name=prompt.name, team=prompt.team.slug, type=prompt.kind, description=prompt.description,
                     tags=prompt.tags, latest_version=prompt.latest_version_number, production_version=production,
                     updated_at=prompt.updated_at)

