"""The resolve path applications call on every request: cached in Redis, never stale after a label move.

Each prompt has a *stamp* in the cache (a random token). A resolved payload is cached under
(prompt, label or version) together with the stamp it was built under, and both keys are read in one
MGET. A label move replaces the stamps of the prompt and of every prompt that includes it (transitively)
once the transaction commits, so the next request rebuilds from the database: no stale read, and no
delete/rebuild race (a payload built from old rows carries the old stamp and is never served again).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from django.core.cache import cache
from django.http import Http404

from apps.core.stamped_cache import new_stamp, stamped_get
from apps.prompts.models import Label, Prompt, PromptReference, PromptVersion
from apps.prompts.rendering import include_graph, inlined_content
from apps.prompts.templating import RenderFailed

log = logging.getLogger(__name__)
PAYLOAD_TTL = 600  # seconds; bounds the damage if a stamp bump is ever lost with the cache server
_STAMP = "prompts:stamp:{name}"
_PAYLOAD = "prompts:resolve:{name}:{selector}"


@dataclass(frozen=True)
class Resolved:
    body: bytes  # the JSON answer, serialised once when cached
    etag: str
    prompt_id: int
    prompt_name: str
    team_id: int
    version_number: int
    label: str | None


def _hash_key(name: str) -> str:
    # Names may hold characters memcached-style backends dislike; Redis does not care, but keep keys short.
    return name if len(name) <= 120 else hashlib.sha1(name.encode()).hexdigest()


def _selector(label: str | None, version: int | None) -> str:
    return f"v{version}" if version is not None else f"l:{label}"


def stamp_key(name: str) -> str:
    """The cache key of this prompt's stamp: a caller keeping resolve payloads of its own (the gateway) keeps
    each under the stamp it was read with and compares (apps.core.stamped_cache.stamp_aread)."""
    return _STAMP.format(name=_hash_key(name))


def resolve_cached(name: str, *, label: str | None = None, version: int | None = None) -> Resolved:
    """The resolve payload, from cache when its stamp is current, else built and cached. 404 if none."""
    key = _hash_key(name)
    return stamped_get(stamp_key(name), _PAYLOAD.format(name=key, selector=_selector(label, version)),
                       lambda: build_resolved(name, label=label, version=version), timeout=PAYLOAD_TTL)


def build_resolved(name: str, *, label: str | None = None, version: int | None = None) -> Resolved:
    prompt = Prompt.objects.filter(name=name).only("id", "name", "team_id", "kind").first()
    if prompt is None:
        raise Http404(f"There is no prompt named {name!r}.")
    versions = PromptVersion.objects.select_related("prompt")
    if version is not None:
        found = versions.filter(prompt=prompt, number=version).first()
        if found is None:
            raise Http404(f"{name} has no version {version}.")
    else:
        found = versions.filter(prompt=prompt, labels__name=label).first()
        if found is None:
            raise Http404(f"{name} has no label {label!r}.")
    graph = include_graph(found)
    if graph.problems:
        # A broken include is the prompt's problem, not the caller's: say which, as a 409.
        raise RenderFailed(graph.problems)
    variables = sorted(set(found.variables) | graph.variables)
    references = [{"name": r.ref.name, "selector": r.ref.selector, "version": r.version.number,
                   "content_hash": r.version.content_hash, "included_from": r.included_from}
                  for r in graph.resolved]
    payload = {
        "name": prompt.name,
        "type": prompt.kind,
        "version": found.number,
        "label": label,
        "content_hash": found.content_hash,
        **inlined_content(found, graph),
        "variables": variables,
        "variables_schema": found.variables_schema,
        "config": found.config,
        "references": references,
    }
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Resolved(body, etag, prompt.pk, prompt.name, prompt.team_id, found.number, label)


def dependents_of(prompt_ids: set[int]) -> set[int]:
    """The prompts whose versions include any of `prompt_ids`, transitively (and those ids)."""
    seen = set(prompt_ids)
    frontier = set(prompt_ids)
    while frontier:
        found = set(PromptReference.objects.filter(to_prompt_id__in=frontier)
                    .values_list("from_version__prompt_id", flat=True)) - seen
        seen |= found
        frontier = found
    return seen


def stamps_bump(prompt_ids: set[int]) -> None:
    """New stamps for these prompts and their dependents: every cached payload of theirs is now stale."""
    ids = dependents_of(set(prompt_ids))
    names = Prompt.objects.filter(pk__in=ids).values_list("name", flat=True)
    stamps = {stamp_key(n): new_stamp() for n in names}
    if stamps:
        try:
            cache.set_many(stamps, timeout=None)
        except Exception:
            log.error("could not invalidate cached prompt payloads for %s", sorted(names), exc_info=True)


def label_names(prompt: Prompt) -> list[str]:
    return list(Label.objects.filter(prompt=prompt).values_list("name", flat=True))


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    candidates = [c.strip().removeprefix("W/") for c in if_none_match.split(",")]
    return etag in candidates
