"""Each dashboard chart's table on its own, from plain run records (no database): what a row says."""

from datetime import UTC, datetime
from types import SimpleNamespace

from apps.evals import dashboards
from apps.evals.seed import ADVERSARIAL_NAME


def run(pk, *, prompt="support/faq", version=1, dataset="golden", pass_rate=0.9, evaluators=(), scored=10):
    return SimpleNamespace(
        pk=pk, prompt=SimpleNamespace(name=prompt), prompt_version=SimpleNamespace(number=version),
        dataset=SimpleNamespace(name=dataset), dataset_revision=2, pass_rate=pass_rate, mean_score=0.87654,
        finished_at=datetime(2026, 11, pk, 9, 30, tzinfo=UTC),
        summary={"evaluators": list(evaluators), "scored": scored})


def test_trends_has_a_row_per_run_with_its_pass_rate_in_percent():
    table = dashboards.trends_table([run(1, pass_rate=0.5), run(2, version=2, pass_rate=0.75)])
    assert [row[4] for row in table["rows"]] == [1, 2]
    assert [row[table["columns"].index("pass rate %")] for row in table["rows"]] == [50.0, 75.0]
    assert table["rows"][0][table["columns"].index("mean score")] == 0.8765


def test_hallucination_counts_only_groundedness_evaluators_as_failures_in_percent():
    grounded = {"kind": "groundedness", "pass_rate": 0.8, "scored": 5}
    other = {"kind": "regex", "pass_rate": 0.1, "scored": 5}
    table = dashboards.hallucination_table([run(1, evaluators=[grounded, other]), run(2, evaluators=[other])])
    assert len(table["rows"]) == 1
    row = table["rows"][0]
    assert row[3] == 1 and row[table["columns"].index("hallucination %")] == 20.0


def test_safety_keeps_the_latest_adversarial_run_of_each_version():
    runs = [run(1, dataset=ADVERSARIAL_NAME, pass_rate=0.5), run(2, dataset=ADVERSARIAL_NAME, pass_rate=0.9),
            run(3, dataset="golden", pass_rate=0.1)]
    table = dashboards.safety_table(runs)
    assert len(table["rows"]) == 1
    assert table["rows"][0][2] == 2 and table["rows"][0][table["columns"].index("violation %")] == 10.0


def test_coverage_says_no_for_a_production_version_without_a_gate():
    production = {7: SimpleNamespace(number=3)}
    table = dashboards.coverage_table(production, {7: "support/faq"}, gates={})
    assert table["rows"] == [["support/faq", 3, "no", "", "no"]]
