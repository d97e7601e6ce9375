"""Evals in Chromium: import a golden set (a bad row first), start a run on the Celery worker, watch its
progress, open a failure, and compare with the production baseline."""

import json
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, prompt_in_production

ROWS = [
    {"id": "refund", "inputs": {"question": "How long do refunds take?"}, "expected": "Refunds take 5 days.",
     "contexts": ["Refunds take 5 days. They go back to the original card."]},
    {"id": "hours", "inputs": {"question": "When is support open?"}, "expected": "Support is open 9 to 5.",
     "contexts": ["Support is open 9 to 5 on weekdays."]},
    {"id": "reset", "inputs": {"question": "How do I reset my password?"},
     "expected": "Use the reset link.", "contexts": ["Use the reset link on the login page."]},
]


@pytest.fixture
def eval_setup(demo_people, celery_worker):
    """A prompt whose v1 is in production (the baseline) and a worse v2, plus a citation evaluator."""
    from apps.evals.services import evaluator_create
    from apps.prompts.content import Draft
    from apps.prompts.services import version_create

    team, prompt, v1 = prompt_in_production(demo_people, "support/e2e-eval", "with context")
    evan = demo_people["evan"]
    version_create(prompt=prompt, actor=evan, commit_message="shorter",
                   draft=Draft(kind="text", template="Question: {{ question }}", config={"model": "local-extractive"}))
    evaluator = evaluator_create(team=team, name="cites-a-passage", kind="citation", actor=evan)
    return {"prompt": prompt, "v1": v1, "evaluator": evaluator, "evan": evan}


def test_import_run_watch_open_a_failure_and_compare_with_the_baseline(page, eval_setup, tmp_path):
    log_in(page, "evan")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Evals", exact=True).click()
    page.get_by_role("navigation", name="Evals").get_by_role("link", name="Datasets").click()
    page.get_by_role("link", name="New dataset").click()
    page.get_by_label("Team").select_option(label="Support AI")
    page.get_by_label("Name").fill("support/e2e-golden")
    page.get_by_label("Required inputs").fill("question")
    page.get_by_role("button", name="Create dataset").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("support/e2e-golden")

    # A file with one bad row: nothing is imported, the row is named by its line.
    bad = tmp_path / "golden.jsonl"
    bad.write_text("\n".join(json.dumps(r) for r in ROWS) + '\n{"inputs": {"topic": "no question"}}\n')
    page.get_by_text("Import CSV or JSONL").click()
    page.get_by_label("File").set_input_files(str(bad))
    page.get_by_role("button", name="Import").click()
    report = page.locator("#row-errors")
    expect(report).to_contain_text("4")
    expect(report).to_contain_text("missing 'question'")
    good = tmp_path / "golden-fixed.jsonl"
    good.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    page.get_by_label("File").set_input_files(str(good))
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("status")).to_contain_text("Imported 3 item(s) as revision 1")
    expect(page.locator("#item-table tbody tr")).to_have_count(3)

    # The production version's run on this revision is the baseline.
    from apps.evals import runner
    from apps.evals.models import Dataset
    from apps.evals.services import run_create

    dataset = Dataset.objects.get(name="support/e2e-golden")
    baseline = run_create(actor=eval_setup["evan"], dataset=dataset, evaluators=[eval_setup["evaluator"]],
                          target_ref={"version_id": eval_setup["v1"].pk}, enqueue=False)
    runner.run_execute_inline(baseline.pk, threads=1)

    page.get_by_role("link", name="New run").click()
    page.get_by_label("Prompt version").select_option(label="support/e2e-eval v2")
    page.get_by_label("Dataset").select_option(label="support/e2e-golden (r1)")
    page.get_by_label(re.compile("cites-a-passage v1")).check()
    page.get_by_role("button", name="Start run").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("support/e2e-eval v2")
    expect(page.locator("#run-progress")).to_be_visible()
    expect(page.locator("#run-progress [data-status]")).to_have_text("finished", timeout=60_000)
    expect(page.locator("#pass-rate")).to_have_text("0.0%")
    expect(page.locator("#progress-count")).to_contain_text("3 / 3 done")

    page.get_by_label("Failures only").check()
    # All three fail, so the rows are there before the filter's swap: wait for the swap itself (it pushes the
    # URL), or its pushState could cancel the click's navigation under load.
    expect(page).to_have_url(re.compile(r"failures=1"))
    expect(page.locator('#result-table tr[data-verdict="fail"]')).to_have_count(3)
    page.locator("#result-table").get_by_role("link", name="refund").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("refund")
    expect(page.locator("#scores")).to_contain_text("no [n] citation in the output")
    expect(page.locator("#baseline-output")).to_contain_text("Refunds take 5 days [1].")

    page.go_back()
    page.get_by_role("link", name="Compare with the baseline").click()
    expect(page.locator("#regressions")).to_contain_text("3")
    expect(page.locator('#item-deltas tr[data-change="regression"]')).to_have_count(3)
    expect(page.locator("#verdict")).to_contain_text("McNemar")
