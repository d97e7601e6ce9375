"""Writes about what a use case is linked to: its prompts and RAG collections, the configuration each was
reviewed with, and the hourly scan that flags a live use case for re-review when one of them changed materially
(a production model or tools, a more sensitive data class). Keyword-only, atomic, one audit event per change.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.permissions import Action, require
from apps.audit.services import audit_record
from apps.prompts.selectors import production_version
from apps.rag.switches import retrieval_switches_changed
from apps.reviews import rules, workflow
from apps.reviews.models import State, UseCase, UseCaseCollection, UseCasePrompt
from apps.reviews.notify import NotificationKind, notify, seat_holders, team_people
from apps.reviews.prompt_status import forget_prompt_status


def _production_config(prompt_id: int) -> dict:
    version = production_version(prompt_id=prompt_id)
    if version is None:
        return {}
    config = version.config or {}
    return {"version": version.number, "model": config.get("model", ""),
            "tools": sorted(t.get("function", t).get("name", "") if isinstance(t, dict) else str(t)
                            for t in (config.get("tools") or []))}


def remember_reviewed_configs(locked: UseCase) -> None:
    for link in locked.prompt_links.all():
        UseCasePrompt.objects.filter(pk=link.pk).update(reviewed_config=_production_config(link.prompt_id))
    for link in locked.collection_links.select_related("collection"):
        UseCaseCollection.objects.filter(pk=link.pk).update(reviewed_data_class=link.collection.data_class)


def _may_link(*, use_case: UseCase, actor, target, links, field: str) -> None:
    """The actor changes the use case and sees the prompt or collection, which is not linked yet."""
    require(actor, Action.CHANGE, use_case)
    require(actor, Action.VIEW, target)
    if links.filter(**{field: target}).exists():
        raise ValidationError({field: [f"{target.name} is already linked."]})


def _unlink(*, use_case: UseCase, actor, links, field: str, pk: int) -> bool:
    """Remove the link to `field` #pk, audited; False when there was none."""
    require(actor, Action.CHANGE, use_case)
    deleted, _ = links.filter(**{f"{field}_id": pk}).delete()
    if deleted:
        audit_record(action=f"use_case.{field}_unlink", obj=use_case, actor=actor, changes={f"{field}_id": pk})
    return bool(deleted)


@transaction.atomic
def prompt_link(*, use_case: UseCase, actor, prompt) -> UseCasePrompt:
    _may_link(use_case=use_case, actor=actor, target=prompt, links=use_case.prompt_links, field="prompt")
    link = UseCasePrompt.objects.create(use_case=use_case, prompt=prompt,
                                        reviewed_config=_production_config(prompt.pk))
    audit_record(action="use_case.prompt_link", obj=use_case, actor=actor, changes={"prompt": prompt.name})
    transaction.on_commit(lambda: forget_prompt_status(use_case.pk, prompt_ids=[prompt.pk]))
    return link


@transaction.atomic
def prompt_unlink(*, use_case: UseCase, actor, prompt_id: int) -> None:
    if _unlink(use_case=use_case, actor=actor, links=use_case.prompt_links, field="prompt", pk=prompt_id):
        transaction.on_commit(lambda: forget_prompt_status(use_case.pk, prompt_ids=[prompt_id]))


@transaction.atomic
def collection_link(*, use_case: UseCase, actor, collection) -> UseCaseCollection:
    _may_link(use_case=use_case, actor=actor, target=collection, links=use_case.collection_links,
              field="collection")
    link = UseCaseCollection.objects.create(use_case=use_case, collection=collection,
                                            reviewed_data_class=collection.data_class)
    audit_record(action="use_case.collection_link", obj=use_case, actor=actor,
                 changes={"collection": collection.name, "data_class": collection.data_class})
    retrieval_switches_changed()  # a use case's "retrieval disabled" now covers this collection too
    return link


@transaction.atomic
def collection_unlink(*, use_case: UseCase, actor, collection_id: int) -> None:
    if _unlink(use_case=use_case, actor=actor, links=use_case.collection_links, field="collection", pk=collection_id):
        retrieval_switches_changed()


def _flag(use_case: UseCase, reason: str, changed: dict, **extra) -> None:
    """Flag for re-review; an active use case becomes review due, so the team can resubmit while it serves."""
    flag = {"reason": reason, "diff": changed, "at": timezone.now().isoformat(), **extra}
    UseCase.objects.filter(pk=use_case.pk).update(rereview_flag=flag)
    audit_record(action="use_case.material_change", obj=use_case, changes=flag)
    use_case.refresh_from_db(fields=["state"])
    if use_case.state == State.ACTIVE:
        workflow.transition(use_case, "mark_review_due", actor=None, note=f"Material change: {reason}")
    notify(recipients=team_people(use_case) + seat_holders(["any"]), kind=NotificationKind.STATE_CHANGED,
           use_case=use_case, subject=f"Re-review needed: {use_case.title}", body=reason)


@transaction.atomic
def material_change_scan() -> int:
    """Flag live use cases whose linked prompt's production model/tools changed since approval, or whose linked
    collection now holds more sensitive data (beat, hourly). A flagged use case is not flagged again."""
    flagged: set[int] = set()
    live = dict(use_case__state__in=workflow.LIVE, use_case__rereview_flag__isnull=True)
    for link in UseCasePrompt.objects.filter(**live).select_related("use_case", "prompt"):
        if link.use_case_id in flagged:
            continue
        now_config = _production_config(link.prompt_id)
        before = link.reviewed_config or {}
        changed = {k: [before.get(k), now_config.get(k)] for k in ("model", "tools")
                   if before and before.get(k) != now_config.get(k)}
        if changed:
            _flag(link.use_case, f"Production of {link.prompt.name} changed its {' and '.join(changed)}", changed,
                  prompt=link.prompt.name)
            flagged.add(link.use_case_id)
    for link in UseCaseCollection.objects.filter(**live).select_related("use_case", "collection"):
        if link.use_case_id in flagged:
            continue
        before, now = link.reviewed_data_class, link.collection.data_class
        if rules.DATA_CLASS_RANK.get(now, 99) > rules.DATA_CLASS_RANK.get(before, 99):
            _flag(link.use_case, f"Collection {link.collection.name} now holds {now} data (reviewed: {before})",
                  {"data_class": [before, now]}, collection=link.collection.name)
            flagged.add(link.use_case_id)
    return len(flagged)

