"""Links from audit events to the objects they are about.

The audit app sits below the feature apps, so it cannot know their URLs: each app registers a resolver
for its object types at start-up (`AppConfig.ready()`). A resolver takes the object ids of one page of
events and returns {object_id: url} with one query, so a page costs one query per object type shown,
never one per event. An object that no longer exists simply has no link.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from apps.accounts.models import Team
from apps.audit.models import AuditEvent

Resolver = Callable[[list[str]], dict[str, str]]
_RESOLVERS: dict[str, Resolver] = {}


def register_object_link(object_type: str, resolver: Resolver) -> None:
    """Register how to link events whose object_type is e.g. "prompts.prompt"."""
    _RESOLVERS[object_type.lower()] = resolver


def registered_types() -> list[str]:
    return sorted(_RESOLVERS)


def int_ids(ids: Iterable[str]) -> list[int]:
    """The numeric ids among object ids (helper for resolvers of models with integer keys)."""
    return [int(i) for i in ids if i.isdigit()]


def attach_links(events: Iterable[AuditEvent]) -> list[AuditEvent]:
    """Set `object_url` (or "") and `team_slug` on each event of a page. One query per object type, one for teams."""
    events = list(events)
    wanted: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event.object_type in _RESOLVERS and event.object_id:
            wanted[event.object_type].add(event.object_id)
    urls = {(object_type, object_id): url
            for object_type, ids in wanted.items()
            for object_id, url in _RESOLVERS[object_type](sorted(ids)).items()}
    team_ids = {event.team_id for event in events if event.team_id is not None}
    slugs = dict(Team.objects.filter(pk__in=team_ids).values_list("pk", "slug")) if team_ids else {}
    for event in events:
        event.object_url = urls.get((event.object_type, event.object_id), "")
        event.team_slug = slugs.get(event.team_id, "")
    return events
