"""Reads of the prompt catalog, already restricted (in SQL) to what the actor may see."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db.models import Exists, F, Func, OuterRef, QuerySet, Subquery
from django.http import Http404

from apps.accounts.models import Membership, Role
from apps.accounts.permissions import Action, can, get_object_for, require, restrict
from apps.llm.models import ModelKind
from apps.llm.selectors import model_list
from apps.prompts import registry
from apps.prompts.models import (
    PRODUCTION,
    GateCheckResult,
    Label,
    LabelEvent,
    PlaygroundRun,
    PromotionApproval,
    PromotionRequest,
    PromotionStatus,
    Prompt,
    PromptReference,
    PromptVersion,
    Webhook,
    WebhookDelivery,
)

SORTS = {
    "name": ("name",),
    "-name": ("-name",),
    "updated": ("updated_at", "name"),
    "-updated": ("-updated_at", "name"),
    "team": ("team__name", "name"),
    "versions": ("-latest_version_number", "name"),
}
DEFAULT_SORT = "-updated"


@dataclass
class CatalogFilters:
    q: str = ""
    team: str = ""  # slug
    tag: str = ""
    label: str = ""
    kind: str = ""
    sort: str = ""
    extra: dict | None = None  # registered filters (reviews: use case) by key


def search_query(text: str) -> SearchQuery | None:
    """Prefix matching on every word, in both the 'simple' and 'english' configurations (as-you-type)."""
    words = re.findall(r"[a-z0-9]+", (text or "").lower())[:8]
    if not words:
        return None
    raw = " & ".join(f"{w}:*" for w in words)
    return SearchQuery(raw, config="simple", search_type="raw") | SearchQuery(raw, config="english",
                                                                               search_type="raw")


def prompt_list(*, actor, filters: CatalogFilters | None = None) -> QuerySet[Prompt]:
    filters = filters or CatalogFilters()
    production = Label.objects.filter(prompt=OuterRef("pk"), name=PRODUCTION).values("version__number")[:1]
    prompts = (restrict(Prompt.objects.all(), actor, Action.VIEW)
               .select_related("team")
               .defer("search_vector")
               .annotate(production_version=Subquery(production)))
    if filters.team:
        prompts = prompts.filter(team__slug=filters.team)
    if filters.tag:
        prompts = prompts.filter(tags__contains=[filters.tag.strip().lower()])
    if filters.kind:
        prompts = prompts.filter(kind=filters.kind)
    if filters.label:
        prompts = prompts.filter(Exists(Label.objects.filter(prompt=OuterRef("pk"), name=filters.label)))
    for f in registry.prompt_filters():
        value = (filters.extra or {}).get(f.key)
        if value:
            prompts = f.apply(prompts, value)
    query = search_query(filters.q)
    if query is not None:
        prompts = prompts.filter(search_vector=query).annotate(rank=SearchRank(F("search_vector"), query))
    sort = filters.sort if filters.sort in SORTS else ("rank" if query is not None else DEFAULT_SORT)
    if sort == "rank":
        return prompts.order_by("-rank", "name")
    return prompts.order_by(*SORTS[sort])


def prompt_get(*, actor, name: str, action: Action | str = Action.VIEW) -> Prompt:
    return get_object_for(actor, Prompt.objects.select_related("team"), action, name=name)


def version_get(*, prompt: Prompt, number: int) -> PromptVersion:
    version = PromptVersion.objects.select_related("prompt", "prompt__team").filter(prompt=prompt,
                                                                                   number=number).first()
    if version is None:
        raise Http404(f"{prompt.name} has no version {number}.")
    return version


def version_list(*, prompt: Prompt) -> QuerySet[PromptVersion]:
    return PromptVersion.objects.filter(prompt=prompt).select_related("prompt").order_by("-number")


def version_choices(*, actor, action: Action | str = Action.CHANGE, limit: int = 500) -> QuerySet[PromptVersion]:
    """Versions of the prompts the actor may `action`, by prompt name then newest first (for a form's choices)."""
    prompts = restrict(Prompt.objects.all(), actor, action)
    return (PromptVersion.objects.filter(prompt__in=prompts).select_related("prompt")
            .order_by("prompt__name", "-number")[:limit])


def version_for(*, actor, pk: int, action: Action | str = Action.CHANGE) -> PromptVersion | None:
    """One version by id if the actor may `action` its prompt, else None."""
    prompts = restrict(Prompt.objects.all(), actor, action)
    return PromptVersion.objects.filter(pk=pk, prompt__in=prompts).select_related("prompt").first()


def prompt_by_pk(*, pk: int) -> Prompt | None:
    """A prompt by id, unchecked: the caller's service checks what the actor may do with it."""
    return Prompt.objects.filter(pk=pk).first()


def playground_run_for(*, actor, pk: int) -> PlaygroundRun | None:
    """A playground run by id if the actor may see its prompt, else None."""
    run = PlaygroundRun.objects.select_related("version", "version__prompt").filter(pk=pk).first()
    return run if run is not None and can(actor, Action.VIEW, run.version.prompt) else None


def production_labels(*, actor) -> QuerySet[Label]:
    """The production label of every prompt the actor may see, with its version and prompt."""
    prompts = restrict(Prompt.objects.all(), actor, Action.VIEW)
    return Label.objects.filter(prompt__in=prompts, name=PRODUCTION).select_related("version", "prompt")


def production_version(*, prompt_id: int | None = None, name: str = "") -> PromptVersion | None:
    """The version the production label points at, by prompt id or name; unchecked: for the portal's own checks
    (reviews' automatic conditions and material-change scan), which read on no person's behalf."""
    labels = Label.objects.filter(name=PRODUCTION).select_related("version")
    label = (labels.filter(prompt_id=prompt_id) if prompt_id is not None else labels.filter(prompt__name=name)).first()
    return label.version if label is not None else None


def team_label_models(*, team_id: int) -> list[tuple[str, str, str]]:
    """(prompt name, label, the model its version's config names or "") for every label of the team's prompts;
    unchecked: the gateway lists what a team's key may call by reference (`prompt:name@label`)."""
    rows = (Label.objects.filter(prompt__team_id=team_id).order_by("prompt__name", "name")
            .values_list("prompt__name", "name", "version__config"))
    return [(name, label, str((config or {}).get("model") or "")) for name, label, config in rows]


def production_label_moves(*, actor, since: datetime, limit: int = 500) -> QuerySet[LabelEvent]:
    """Moves (not first placements) of the production label since `since`, oldest first, on visible prompts."""
    prompts = restrict(Prompt.objects.all(), actor, Action.VIEW)
    return (LabelEvent.objects.filter(prompt__in=prompts, label=PRODUCTION, occurred_at__gte=since,
                                      from_version__isnull=False)
            .select_related("prompt", "from_version", "to_version", "promotion").order_by("occurred_at")[:limit])


def labels_by_version(prompt: Prompt) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for number, name in Label.objects.filter(prompt=prompt).values_list("version__number", "name").order_by("name"):
        out.setdefault(number, []).append(name)
    return out


def label_list(*, prompt: Prompt) -> QuerySet[Label]:
    return Label.objects.filter(prompt=prompt).select_related("version").order_by("name")


def label_history(*, prompt: Prompt, label: str | None = None) -> QuerySet[LabelEvent]:
    events = LabelEvent.objects.filter(prompt=prompt).select_related("from_version", "to_version")
    if label:
        events = events.filter(label=label)
    return events.order_by("-occurred_at", "-id")


def label_version_at(*, prompt: Prompt, label: str, at: datetime) -> PromptVersion | None:
    """What `label` pointed at, at time `at` (None if it did not exist yet)."""
    event = (LabelEvent.objects.filter(prompt=prompt, label=label, occurred_at__lte=at)
             .select_related("to_version").order_by("-occurred_at", "-id").first())
    return event.to_version if event else None


def prompt_uses(*, prompt: Prompt) -> list[PromptReference]:
    """What the latest version includes."""
    return list(PromptReference.objects.filter(from_version__prompt=prompt,
                                               from_version__number=prompt.latest_version_number)
                .select_related("to_prompt").order_by("to_prompt__name"))


def prompt_used_by(*, prompt: Prompt, actor) -> list[dict]:
    """Which prompts' versions include this one (restricted to what the actor may see), newest version first."""
    visible = restrict(Prompt.objects.all(), actor, Action.VIEW).values("pk")
    rows = (PromptReference.objects.filter(to_prompt=prompt, from_version__prompt__in=visible)
            .values("from_version__prompt__name", "from_version__number", "label", "version_number")
            .order_by("from_version__prompt__name", "-from_version__number"))
    grouped: dict[str, dict] = {}
    for row in rows:
        entry = grouped.setdefault(row["from_version__prompt__name"], {"name": row["from_version__prompt__name"],
                                                                       "versions": [], "selectors": set()})
        entry["versions"].append(row["from_version__number"])
        entry["selectors"].add(f"v{row['version_number']}" if row["version_number"] else row["label"])
    return [{**e, "selectors": sorted(e["selectors"])} for e in grouped.values()]


def promotion_request_list(*, actor, prompt: Prompt | None = None, status: str = "") -> QuerySet[PromotionRequest]:
    requests = restrict(PromotionRequest.objects.all(), actor, Action.VIEW, team_field="prompt__team")
    if prompt is not None:
        requests = requests.filter(prompt=prompt)
    if status:
        requests = requests.filter(status=status)
    return requests.select_related("prompt", "prompt__team", "to_version", "from_version").order_by("-created_at")


def promotion_requests_waiting_on(*, user) -> QuerySet[PromotionRequest]:
    """Open requests this person may approve and has not decided on yet (the approvals check's rule, in SQL:
    an engineer or owner of the owning team, neither the version's author nor the requester)."""
    if not getattr(user, "is_authenticated", False) or not isinstance(user, get_user_model()):
        return PromotionRequest.objects.none()
    teams = Membership.objects.filter(user=user, role__in=[Role.ENGINEER, Role.OWNER]).values("team_id")
    decided = PromotionApproval.objects.filter(request=OuterRef("pk"), user=user)
    return (PromotionRequest.objects.filter(status=PromotionStatus.OPEN, prompt__team_id__in=teams)
            .exclude(to_version__author=user).exclude(requested_by=user).exclude(Exists(decided))
            .select_related("prompt", "prompt__team", "to_version", "from_version").order_by("-created_at"))


def promotion_request_get(*, actor, pk: int, action: Action | str = Action.VIEW) -> PromotionRequest:
    requests = PromotionRequest.objects.select_related("prompt", "prompt__team", "to_version", "from_version")
    request = restrict(requests, actor, Action.VIEW, team_field="prompt__team").filter(pk=pk).first()
    if request is None:
        raise Http404("No promotion request matches the given query.")

    require(actor, action, request.prompt)
    return request


def latest_check_results(request: PromotionRequest) -> list[GateCheckResult]:
    last = request.check_results.order_by("-run").values_list("run", flat=True).first()
    if last is None:
        return []
    return list(request.check_results.filter(run=last).order_by("id"))


def model_config_warnings(config: dict | None) -> list[str]:
    """A warning (not a refusal: the catalog changes, and a model may be added after the prompt) when the
    config names a model that is not an active chat model of the catalog, naming the ones that are."""
    model = (config or {}).get("model")
    if not model:
        return []
    names = list(model_list(kind=ModelKind.CHAT).values_list("name", flat=True))
    if model in names:
        return []
    return [f"The model '{model}' is not an active chat model in the catalog (Models & prices): calls through the "
            f"portal will fail until an admin adds it. Catalog chat models: {', '.join(names) or 'none yet'}."]


def open_promotion_request(prompt: Prompt, label: str = PRODUCTION) -> PromotionRequest | None:
    """The request moving `label` that is still open (at most one: opening another is refused)."""
    return (prompt.promotion_requests.filter(label=label, status=PromotionStatus.OPEN)
            .select_related("to_version").first())


def open_request_count(prompt: Prompt) -> int:
    return prompt.promotion_requests.filter(status=PromotionStatus.OPEN).count()


def webhook_list(*, team) -> QuerySet[Webhook]:
    return Webhook.objects.filter(team=team).order_by("url")


def delivery_list(*, team, limit: int = 50) -> list[WebhookDelivery]:
    return list(WebhookDelivery.objects.filter(webhook__team=team).select_related("webhook")
                .order_by("-created_at", "-id")[:limit])


def tag_choices(*, actor) -> list[str]:
    tags = (restrict(Prompt.objects.all(), actor, Action.VIEW).order_by()
            .annotate(tag=Func(F("tags"), function="unnest")).values_list("tag", flat=True).distinct())
    return sorted(tags)[:200]


def label_choices(*, actor) -> list[str]:
    visible = restrict(Prompt.objects.all(), actor, Action.VIEW).values("pk")
    return sorted(Label.objects.filter(prompt__in=visible).order_by().values_list("name", flat=True).distinct())
