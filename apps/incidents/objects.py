"""The objects a switch can be applied from (issue #15: "or on the use case / prompt / key / collection page"):
a use case, a prompt, a gateway key, a RAG collection, each read through its own app's selector (404 when the
reader may not see it), with the switches that fit it and the target a mitigation stores for it."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q
from django.http import Http404
from django.urls import reverse

from apps.accounts.models import Team
from apps.gateway import selectors as gateway_selectors
from apps.gateway.models import GatewayKey
from apps.incidents.models import MitigationKind
from apps.prompts import selectors as prompt_selectors
from apps.prompts.models import Prompt
from apps.rag import selectors as rag_selectors
from apps.reviews import selectors as review_selectors
from apps.reviews.models import UseCaseCollection, UseCasePrompt

K = MitigationKind
# scope -> (the target's id field, the switches that act on it from its page, its noun)
SCOPES = {
    "use_case": ("use_case_id", (K.FEATURE_OFF, K.STRICTER_FILTERS, K.RETRIEVAL_DISABLED), "use case"),
    "prompt": ("prompt_id", (K.FEATURE_OFF, K.STRICTER_FILTERS, K.PROMPT_ROLLBACK), "prompt"),
    "key": ("key_id", (K.FEATURE_OFF, K.RATE_LIMIT, K.STRICTER_FILTERS), "gateway key"),
    "collection": ("collection_id", (K.RETRIEVAL_DISABLED,), "collection"),
}


@dataclass(frozen=True)
class Switchable:
    scope: str
    pk: int
    name: str
    team: Team
    url: str  # the object's own page

    @property
    def target(self) -> dict:
        return {"scope": self.scope, SCOPES[self.scope][0]: self.pk}

    @property
    def kinds(self) -> tuple[str, ...]:
        return SCOPES[self.scope][1]

    @property
    def noun(self) -> str:
        return SCOPES[self.scope][2]

    @property
    def label(self) -> str:
        return f"{self.noun} {self.name}"


def of(scope: str, obj) -> Switchable:
    """The switchable view of an object the page already holds (its reader may see it)."""
    if scope == "use_case":
        return Switchable(scope, obj.pk, obj.title, obj.team, obj.get_absolute_url())
    if scope == "prompt":
        return Switchable(scope, obj.pk, obj.name, obj.team, reverse("prompts:detail", args=[obj.name]))
    if scope == "key":
        return Switchable(scope, obj.pk, f"{obj.name} ({obj.prefix})", obj.team,
                          reverse("gateway:key_detail", args=[obj.pk]))
    return Switchable(scope, obj.pk, obj.name, obj.team, obj.get_absolute_url())


def switchable_get(*, actor, scope: str, pk: int) -> Switchable:
    """The object of `scope` and id `pk` as its own app shows it to `actor`: 404 when unknown or not visible."""
    if scope == "use_case":
        return of(scope, review_selectors.use_case_get(actor=actor, pk=pk))
    if scope == "prompt":
        name = Prompt.objects.filter(pk=pk).values_list("name", flat=True).first()
        if name is None:
            raise Http404("No prompt matches the given query.")
        return of(scope, prompt_selectors.prompt_get(actor=actor, name=name))
    if scope == "key":
        return of(scope, gateway_selectors.key_get(actor, pk))
    if scope == "collection":
        return of(scope, rag_selectors.collection_get(actor=actor, pk=pk))
    raise Http404("Switches act on a use case, a prompt, a gateway key or a collection.")


def _targets(scope: str, ids) -> Q:
    ids = [i for i in ids if i is not None]
    return Q(target__scope=scope, **{f"target__{SCOPES[scope][0]}__in": ids}) if ids else Q(pk__in=[])


def acting_on(obj: Switchable) -> Q:
    """Which mitigations act on the object (a filter on Mitigation): those targeting it, and those targeting what
    covers it or what it covers — a key's feature and use case; a use case's keys, prompts and collections; the use
    cases a prompt or a collection is linked to."""
    mine = Q(target__scope=obj.scope, **{f"target__{SCOPES[obj.scope][0]}": obj.pk})
    if obj.scope == "key":
        key = GatewayKey.objects.filter(pk=obj.pk).values("team_id", "feature", "use_case_id").get()
        return mine | Q(target__scope="feature", target__team_id=key["team_id"], target__feature=key["feature"]) | \
            _targets("use_case", [key["use_case_id"]])
    if obj.scope == "use_case":
        return mine | _targets("key", GatewayKey.objects.filter(use_case_id=obj.pk).values_list("pk", flat=True)) | \
            _targets("prompt", UseCasePrompt.objects.filter(use_case_id=obj.pk).values_list("prompt_id", flat=True)) | \
            _targets("collection", UseCaseCollection.objects.filter(use_case_id=obj.pk)
                     .values_list("collection_id", flat=True))
    links = UseCasePrompt.objects.filter(prompt_id=obj.pk) if obj.scope == "prompt" else \
        UseCaseCollection.objects.filter(collection_id=obj.pk)
    return mine | _targets("use_case", links.values_list("use_case_id", flat=True))
