"""The `scorecard_kpi` condition predicate (reviews' conditions registry): "P95 latency < 6 s over 7 days".

Computed on demand for the one use case over the condition's own span, from the same facts and KPI functions as
the scorecard (cheap: rollups), so a condition never waits for the next refresh. No data reads as not passed,
with the KPI's own reason (what would feed it)."""

from __future__ import annotations

from django.utils import timezone

from apps.reviews.conditions import Evaluation
from apps.scorecards import sources
from apps.scorecards.facts import Window
from apps.scorecards.kpis import KPIS, display

KEY = "scorecard_kpi"
LABEL = "KPI over a window (scorecards)"
OPERATORS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
PARAMS = {
    "kpi": {"type": "string", "label": f"KPI ({', '.join(KPIS)})"},
    "op": {"type": "string", "label": "Comparison (<, <=, > or >=)"},
    "threshold": {"type": "number", "label": "Threshold (the KPI's unit: rates 0–1, latency ms, hours, minutes)",
                  "min": 0},
    "days": {"type": "number", "label": "Over the last N days", "min": 1, "max": 90},
}


def evaluate(use_case, params) -> Evaluation:
    kpi = KPIS.get(params["kpi"])
    op = OPERATORS.get(params["op"])
    if kpi is None or op is None:
        return Evaluation(None, None, f"Unknown KPI {params['kpi']!r} or comparison {params['op']!r}.")
    window = Window.ending(timezone.now(), int(params["days"]))
    facts = sources.collect([(use_case.pk, use_case.team_id, use_case.tier)], [window])[use_case.pk]
    measure = kpi.compute(facts, window)
    if measure.value is None:
        return Evaluation(False, None, f"{kpi.label}: no data over {int(params['days'])} days. {measure.detail}"[:500])
    ok = op(measure.value, params["threshold"])
    return Evaluation(ok, measure.value, f"{kpi.label} = {display(kpi, measure.value)} over {int(params['days'])} "
                                         f"days ({'meets' if ok else 'fails'} {params['op']} "
                                         f"{display(kpi, params['threshold'])}).")
