"""Attack success rates of a campaign: overall, per category (with its OWASP id) and per strategy, each with
its Wilson 95 % interval; against a collection, the indirect attacks split by whether their planted document was
retrieved. One GROUP BY over the campaign's attacks; errors are not counted (not scored)."""

from __future__ import annotations

from django.db.models import Count, Q

from apps.redteam.front_door import NOT_RUN
from apps.redteam.library_glue import wilson
from apps.redteam.models import Attack, AttackStatus
from apps.redteam.owasp import owasp_label


def _rate(successes: int, total: int) -> dict:
    interval = wilson(successes, total)
    return {"successes": successes, "total": total, "asr": interval["value"], "low": interval["low"],
            "high": interval["high"]}


def compute_summary(campaign_id: int) -> dict:
    rows = list(Attack.objects.filter(campaign_id=campaign_id, status=AttackStatus.DONE)
                .values("category", "owasp", "strategy")
                .annotate(total=Count("id"), successes=Count("id", filter=Q(success=True))))
    categories: dict[str, list[int]] = {}
    strategies: dict[str, list[int]] = {}
    owasp_of: dict[str, str] = {}
    for row in rows:
        for bucket, name in ((categories, row["category"]), (strategies, row["strategy"])):
            counts = bucket.setdefault(name, [0, 0])
            counts[0] += row["successes"]
            counts[1] += row["total"]
        owasp_of.setdefault(row["category"], row["owasp"])
    successes = sum(r["successes"] for r in rows)
    total = sum(r["total"] for r in rows)
    indirect = Attack.objects.filter(campaign_id=campaign_id, status=AttackStatus.DONE,
                                     planted_retrieved__isnull=False).aggregate(
        retrieved=Count("id", filter=Q(planted_retrieved=True)),
        retrieved_successes=Count("id", filter=Q(planted_retrieved=True, success=True)),
        missed=Count("id", filter=Q(planted_retrieved=False)),
        missed_successes=Count("id", filter=Q(planted_retrieved=False, success=True)))
    apart = Attack.objects.filter(campaign_id=campaign_id).aggregate(
        blocked=Count("id", filter=Q(status=AttackStatus.DONE, evidence__decided_by="guardrail")),
        not_run=Count("id", filter=Q(status=AttackStatus.ERROR, error__startswith=NOT_RUN)))
    return {
        # blocked_by_gateway: scored attacks the key's guardrails refused (defended); not_run: the front door
        # refused them for a limit, a budget or the use case (unscored, ADR 0119)
        "overall": _rate(successes, total) | {"blocked_by_gateway": apart["blocked"], "not_run": apart["not_run"]},
        "categories": [{"name": name, "owasp": owasp_of[name], "owasp_label": owasp_label(owasp_of[name]),
                        **_rate(*counts)} for name, counts in sorted(categories.items())],
        "strategies": [{"name": name, **_rate(*counts)} for name, counts in sorted(strategies.items())],
        # against a collection (ADR 0120): how often the planted document was retrieved at all, and the ASR of
        # the attacks whose planted document was retrieved apart from those whose was not (two questions)
        "indirect": {
            "retrieval": _rate(indirect["retrieved"], indirect["retrieved"] + indirect["missed"]),
            "retrieved": _rate(indirect["retrieved_successes"], indirect["retrieved"]),
            "not_retrieved": _rate(indirect["missed_successes"], indirect["missed"]),
        } if indirect["retrieved"] + indirect["missed"] else None,
    }
