"""Dashboards: score trends, hallucination rate, safety violation rate, evaluation coverage, regression escapes
and online feedback. Each chart is a plotly figure rendered server-side, with its numbers as a table and CSV.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apps.accounts.permissions import Action, restrict
from apps.evals.gates import gate_evaluate
from apps.evals.models import EvalGate, EvalRun, RunStatus
from apps.evals.seed import ADVERSARIAL_NAME
from apps.evals.selectors import feedback_rates
from apps.prompts.selectors import production_label_moves, production_labels

MAX_RUNS = 1000
RECENT_DAYS = 30
ESCAPE_DAYS = 180
DEFAULT_ALLOWED_REGRESSION = 0.05


def _pct(value):
    return None if value is None else round(100 * value, 1)


def _finished_runs(actor):
    return (restrict(EvalRun.objects.filter(status=RunStatus.FINISHED, prompt__isnull=False), actor, Action.VIEW)
            .select_related("prompt", "prompt_version", "dataset").order_by("-finished_at")[:MAX_RUNS])


def _when(run) -> str:
    return run.finished_at.strftime("%Y-%m-%d %H:%M")


def _version_number(run):
    return run.prompt_version.number if run.prompt_version else None


def trends_table(runs) -> dict:
    """Pass rate and mean score of each finished run (oldest first)."""
    rows = [[run.prompt.name, _version_number(run), run.dataset.name, run.dataset_revision, run.pk, _when(run),
             _pct(run.pass_rate), None if run.mean_score is None else round(run.mean_score, 4)] for run in runs]
    return {"title": "Score trends", "columns": ["prompt", "version", "dataset", "revision", "run", "finished",
                                                 "pass rate %", "mean score"], "rows": rows}


def hallucination_table(runs) -> dict:
    """The groundedness evaluators' failure rate in each run that had one."""
    rows = [[run.prompt.name, _version_number(run), run.dataset.name, run.pk, _when(run),
             _pct(1 - entry["pass_rate"]), entry["scored"]]
            for run in runs for entry in (run.summary or {}).get("evaluators", [])
            if entry.get("kind") == "groundedness" and entry.get("pass_rate") is not None]
    return {"title": "Hallucination rate (groundedness failures)",
            "columns": ["prompt", "version", "dataset", "run", "finished", "hallucination %", "scored"],
            "rows": rows}


def safety_table(runs) -> dict:
    """The failure rate on the adversarial set: the latest run of each prompt version."""
    latest = {}
    for run in runs:
        if run.dataset.name == ADVERSARIAL_NAME and run.pass_rate is not None:
            version = _version_number(run)
            latest[(run.prompt.name, version)] = [run.prompt.name, version, run.pk, _when(run),
                                                  _pct(1 - run.pass_rate), (run.summary or {}).get("scored")]
    return {"title": "Safety violation rate (adversarial set)",
            "columns": ["prompt", "version", "run", "finished", "violation %", "scored"],
            "rows": list(latest.values())}


def coverage_table(production: dict, names: dict, gates: dict) -> dict:
    """Each production version: has a gate, and the gate passed with a run of the last RECENT_DAYS."""
    rows = []
    recent = timezone.now() - timedelta(days=RECENT_DAYS)
    for prompt_id, version in sorted(production.items(), key=lambda kv: names.get(kv[0], "")):
        gate = gates.get(prompt_id)
        passing, last = False, None
        if gate is not None:
            verdict = gate_evaluate(gate, version, baseline_version=None)
            runs_ok = [d.run for d in verdict.datasets if d.run is not None and d.status == "passed"]
            last = max((r.finished_at for r in runs_ok), default=None)
            passing = verdict.passed and last is not None and last >= recent
        rows.append([names.get(prompt_id, ""), version.number, "yes" if gate else "no",
                     last.strftime("%Y-%m-%d") if last else "", "yes" if passing else "no"])
    return {"title": "Evaluation coverage of production prompts",
            "columns": ["prompt", "production version", "gate", "last passing run", "covered"], "rows": rows}


def escapes_table(actor, gates: dict) -> dict:
    """Production moves of the last ESCAPE_DAYS to a version whose pass rate dropped more than allowed."""
    rows = []
    since = timezone.now() - timedelta(days=ESCAPE_DAYS)
    for event in production_label_moves(actor=actor, since=since, limit=500):
        after = _latest_run(event.to_version)
        if after is None or after.pass_rate is None:
            continue
        before = (EvalRun.objects.filter(prompt_version=event.from_version, dataset_id=after.dataset_id,
                                         dataset_revision=after.dataset_revision,
                                         evaluator_signature=after.evaluator_signature, status=RunStatus.FINISHED)
                  .order_by("-finished_at").first())
        if before is None or before.pass_rate is None:
            continue
        gate = gates.get(event.prompt_id)
        allowed = gate.max_regression if gate else DEFAULT_ALLOWED_REGRESSION
        drop = before.pass_rate - after.pass_rate
        if drop > allowed + 1e-12:
            how = "expedited" if event.promotion and event.promotion.expedited else (
                "promotion" if event.promotion else "direct")
            rows.append([event.prompt.name, event.from_version.number, event.to_version.number,
                         event.occurred_at.strftime("%Y-%m-%d"), _pct(before.pass_rate), _pct(after.pass_rate),
                         _pct(drop), how, before.pk, after.pk])
    return {"title": "Regression escapes (production moved to a worse version)",
            "columns": ["prompt", "from", "to", "promoted", "before %", "after %", "drop %", "how",
                        "baseline run", "candidate run"], "rows": rows}


def feedback_table(actor) -> dict:
    """Online feedback per prompt version and use case: task success and human override rates, and the live
    groundedness the products scored (ADR 0121)."""
    rows = [[r["prompt_name"] or "(unknown)", r["prompt_version"], r["use_case_id"], r["n"],
             _pct(r["success_rate"]), _pct(r["override_rate"]), _pct(r["groundedness"])]
            for r in feedback_rates(actor=actor)]
    return {"title": "Online feedback: task success and human override rates, live groundedness",
            "columns": ["prompt", "version", "use case", "feedback", "success %", "override %", "groundedness %"],
            "rows": rows}


def _production(actor) -> tuple[dict, dict, dict]:
    """The production version, the name and the gate of each prompt the actor sees, by prompt id."""
    labels = list(production_labels(actor=actor))
    production = {label.prompt_id: label.version for label in labels}
    names = {label.prompt_id: label.prompt.name for label in labels}
    gates = {g.prompt_id: g for g in EvalGate.objects.filter(prompt_id__in=list(production)).select_related("prompt")}
    return production, names, gates


def dashboard_data(*, actor) -> dict:
    runs = list(_finished_runs(actor))
    runs.reverse()  # oldest first, for lines
    production, names, gates = _production(actor)
    coverage = coverage_table(production, names, gates)
    covered = sum(1 for row in coverage["rows"] if row[4] == "yes")
    return {
        "coverage_share": covered / len(coverage["rows"]) if coverage["rows"] else None,
        "tables": {"trends": trends_table(runs), "hallucination": hallucination_table(runs),
                   "safety": safety_table(runs), "coverage": coverage,
                   "escapes": escapes_table(actor, gates), "feedback": feedback_table(actor)},
    }


def _latest_run(version):
    return (EvalRun.objects.filter(prompt_version=version, status=RunStatus.FINISHED)
            .order_by("-finished_at").first())


def figures_html(data: dict) -> dict[str, str]:
    from apps.core import charts  # why: plotly is heavy (~80 ms); only the dashboards page draws

    tables = data["tables"]

    def lines(rows, group, version_index, y_index, when_index, run_index, y_title):
        """One line per prompt (and dataset) across its versions; each point's time and run in the hover."""
        groups: dict = {}
        for row in rows:
            groups.setdefault(group(row), []).append(row)
        series = {name: [(f"v{p[version_index]}", p[y_index], f"run #{p[run_index]}, {p[when_index]}")
                         for p in sorted(points, key=lambda p: (p[version_index] or 0, p[when_index]))]
                  for name, points in groups.items()}
        return charts.category_lines(series=series, y_title=y_title, x_title="version")

    out = {
        "trends": lines(tables["trends"]["rows"], lambda r: f"{r[0]} on {r[2]}", 1, 6, 5, 4, "pass rate %"),
        "hallucination": lines(tables["hallucination"]["rows"], lambda r: f"{r[0]} on {r[2]}", 1, 5, 4, 3,
                               "hallucination %"),
    }
    safety = tables["safety"]["rows"]
    out["safety"] = charts.bars(x=[f"{r[0]} v{r[1]}" for r in safety], y=[r[4] for r in safety],
                                y_title="violation %", color="#b42318")
    coverage = tables["coverage"]["rows"]
    counts = {"covered": sum(1 for r in coverage if r[4] == "yes"),
              "gate, no recent pass": sum(1 for r in coverage if r[2] == "yes" and r[4] == "no"),
              "no gate": sum(1 for r in coverage if r[2] == "no")}
    out["coverage"] = charts.bars(x=list(counts), y=list(counts.values()), y_title="production prompts",
                                  color=["#1d7a46", "#9a6200", "#b42318"])
    by_month: dict = {}
    for row in tables["escapes"]["rows"]:
        by_month[row[3][:7]] = by_month.get(row[3][:7], 0) + 1
    out["escapes"] = charts.bars(x=list(by_month), y=list(by_month.values()), y_title="escapes", color="#b42318")
    feedback = tables["feedback"]["rows"]
    labels = [f"{r[0]} v{r[1]}" for r in feedback]
    out["feedback"] = charts.grouped_bars(x=labels, bars={"success %": [r[4] for r in feedback],
                                                          "override %": [r[5] for r in feedback],
                                                          "groundedness %": [r[6] for r in feedback]}, y_title="%")
    return {key: charts.to_html(figure) for key, figure in out.items()}
