"""The risk assessment of one use case, as one context shared by the page, the printable report and the
Markdown/JSON exports: answers, tier and rule trace, controls, conditions, votes, history and the audit trail.
"""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Q, Sum
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.costs.models import UsageEvent
from apps.reviews import questionnaire, rules, selectors
from apps.reviews.models import UseCase


def monthly_cost(use_case: UseCase, prompt_names: list[str]) -> Decimal | None:
    """This calendar month's spend tagged with the use case or made by its linked prompts (costs ledger)."""
    start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    match = Q(use_case_id=use_case.pk)
    if prompt_names:
        match |= Q(prompt_name__in=prompt_names, team_id=use_case.team_id)
    return UsageEvent.objects.filter(match, occurred_at__gte=start).aggregate(total=Sum("cost"))["total"] or Decimal(0)


def report_context(use_case: UseCase) -> dict:
    q = selectors.questionnaire_by_version(use_case.questionnaire_version)
    links = list(use_case.prompt_links.select_related("prompt").order_by("prompt__name"))
    conditions = list(use_case.conditions.select_related("owner", "accepted_by").prefetch_related("checks"))
    for c in conditions:
        c.latest_check = next(iter(c.checks.all()), None)
    audit = list(AuditEvent.objects.filter(object_type="reviews.usecase", object_id=str(use_case.pk))
                 .order_by("id"))
    return {
        "use_case": use_case,
        "answers": questionnaire.display(q, use_case.answers),
        "trace": use_case.rule_trace or [],
        "matched_rules": [s for s in (use_case.rule_trace or []) if s["matched"]],
        "controls": selectors.controls_status(use_case),
        "conditions": conditions,
        "votes": list(use_case.votes.select_related("user").order_by("round", "created_at")),
        "required_seats": _required(use_case),
        "transitions": list(use_case.transitions.order_by("occurred_at", "id")),
        "submissions": selectors.submissions(use_case),
        "tier_changes": list(use_case.tier_changes.select_related("requested_by", "decided_by")),
        "comments": list(use_case.comments.select_related("author")),
        "prompt_links": links,
        "collection_links": list(use_case.collection_links.select_related("collection")),
        "monthly_cost": monthly_cost(use_case, [link.prompt.name for link in links]),
        "audit_events": audit,
        "tier_labels": rules.TIER_LABELS,
        "generated_at": timezone.now(),
    }


def _required(use_case: UseCase) -> list[str]:
    return selectors.required_seats(use_case) if use_case.tier else []


def report_json(ctx: dict) -> dict:
    u = ctx["use_case"]
    return {
        "use_case": {"id": u.pk, "title": u.title, "team": u.team.slug, "purpose": u.purpose,
                     "intended_uses": u.intended_uses, "business_owner": u.business_owner.get_username()
                     if u.business_owner else None, "accountable_executive": u.accountable_executive,
                     "lifecycle_stage": u.lifecycle_stage, "state": u.state, "tier": u.tier,
                     "computed_tier": u.computed_tier, "tier_note": u.tier_note,
                     "questionnaire_version": u.questionnaire_version,
                     "approved_at": _iso(u.approved_at), "expires_at": _iso(u.expires_at),
                     "rereview_flag": u.rereview_flag},
        "answers": u.answers,
        "rule_trace": ctx["trace"],
        "required_controls": [{"key": c["key"], "name": c["name"], "status": c["status"],
                               **({"waiver": {"by": c["waiver"].waived_by.get_username() if c["waiver"].waived_by
                                              else None, "reason": c["waiver"].reason,
                                              "at": c["waiver"].created_at.isoformat()}} if c["waiver"] else {})}
                              for c in ctx["controls"]],
        "conditions": [{"id": c.pk, "title": c.title, "kind": c.kind, "predicate": c.predicate, "params": c.params,
                        "owner": c.owner.get_username() if c.owner else None, "due_date": c.due_date.isoformat(),
                        "status": c.status,
                        "last_check": {"value": c.latest_check.value, "passed": c.latest_check.passed,
                                       "detail": c.latest_check.detail, "checked_at": _iso(c.latest_check.checked_at)}
                        if c.latest_check else None} for c in ctx["conditions"]],
        "votes": [{"round": v.round, "seat": v.seat, "user": v.user.get_username(), "decision": v.decision,
                   "rationale": v.rationale, "at": _iso(v.created_at)} for v in ctx["votes"]],
        "transitions": [{"name": t.name, "from": t.from_state, "to": t.to_state, "actor": t.actor_label,
                         "note": t.note, "at": _iso(t.occurred_at)} for t in ctx["transitions"]],
        "tier_changes": [{"from": t.from_tier, "to": t.to_tier, "status": t.status, "justification": t.justification,
                          "requested_by": t.requested_by.get_username() if t.requested_by else None,
                          "decided_by": t.decided_by.get_username() if t.decided_by else None}
                         for t in ctx["tier_changes"]],
        "prompts": [link.prompt.name for link in ctx["prompt_links"]],
        "collections": [{"name": link.collection.name, "data_class": link.collection.data_class,
                         "reviewed_data_class": link.reviewed_data_class} for link in ctx["collection_links"]],
        "audit_trail": [{"id": e.pk, "at": _iso(e.occurred_at), "actor": e.actor_label, "action": e.action,
                         "changes": e.changes, "hash": e.hash} for e in ctx["audit_events"]],
        "generated_at": _iso(ctx["generated_at"]),
    }


def _iso(value):
    return value.isoformat() if value else None


def report_markdown(ctx: dict) -> str:
    u = ctx["use_case"]
    lines = [f"# Risk assessment: {u.title}", "",
             f"- Team: {u.team.name}", f"- State: {u.state_label}", f"- Tier: {u.tier_label}"
             + (f" (computed: {rules.TIER_LABELS.get(u.computed_tier, '—')}; {u.tier_note})" if u.tier_note else ""),
             f"- Business owner: {u.business_owner.get_username() if u.business_owner else '—'}",
             f"- Accountable executive: {u.accountable_executive or '—'}",
             f"- Approved: {_iso(u.approved_at) or '—'} · expires: {_iso(u.expires_at) or '—'}", "",
             "## Purpose", "", u.purpose, ""]
    if u.intended_uses:
        lines += ["## Intended uses", "", u.intended_uses, ""]
    lines += ["## Answers", ""]
    for section in ctx["answers"]:
        lines.append(f"### {section['section']}")
        lines += [f"- **{row['label']}** (`{row['id']}`): {row['value']}" for row in section["rows"]]
        lines.append("")
    lines += ["## Rule trace", "", "| Rule | Matched | Tier | Description | Source |", "|---|---|---|---|---|"]
    lines += [f"| {s['id']} | {'yes' if s['matched'] else 'no'} | {s['tier']} | {s['description']} | {s['source']} |"
              for s in ctx["trace"]]
    lines += ["", "## Required controls", ""]
    lines += [f"- {c['name']} (`{c['key']}`): {c['status']}"
              + (f" — {c['waiver'].reason}" if c["waiver"] else "") for c in ctx["controls"]] or ["- none"]
    lines += ["", "## Conditions", ""]
    for c in ctx["conditions"]:
        check = c.latest_check
        lines.append(f"- {c.title} — {c.get_status_display()}; owner {c.owner.get_username() if c.owner else '—'}, "
                     f"due {c.due_date}" + (f"; last check: {check.detail}" if check else ""))
    if not ctx["conditions"]:
        lines.append("- none")
    lines += ["", "## Votes", ""]
    lines += [f"- Round {v.round}, {v.seat}: **{v.decision}** by {v.user.get_username()} — {v.rationale}"
              for v in ctx["votes"]] or ["- none"]
    lines += ["", "## Audit trail", "", "| # | When (UTC) | Actor | Action | Hash |", "|---|---|---|---|---|"]
    lines += [f"| {e.pk} | {e.occurred_at:%Y-%m-%d %H:%M:%S} | {e.actor_label} | {e.action} | `{e.hash[:12]}` |"
              for e in ctx["audit_events"]]
    lines += ["", f"_Generated {ctx['generated_at']:%Y-%m-%d %H:%M} UTC by the GenAI Portal._", ""]
    return "\n".join(lines)
