"""The evals pages: who sees what (the permission matrix), forms with errors next to fields or rows, htmx
fragments, constant query counts on the run page."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.templatetags.static import static
from django.urls import reverse

from apps.evals import runner
from apps.evals.datasets import dataset_items_add
from apps.evals.models import Dataset, EvalGate, EvalResult, EvalRun
from apps.evals.services import run_create


@pytest.fixture
def finished_run(version, dataset, make_evaluator, engineer):
    run = run_create(actor=engineer, dataset=dataset, evaluators=[make_evaluator("cites", "citation"),
                                                                   make_evaluator("exact", "exact_match")],
                     target_ref={"version_id": version.pk}, enqueue=False)
    return runner.run_execute_inline(run.pk, threads=1)


PAGES = ["evals:list", "evals:dataset_list", "evals:evaluator_list", "evals:run_list", "evals:gate_list",
         "evals:dashboards", "evals:feedback_list"]


@pytest.mark.parametrize("name", PAGES)
def test_every_list_page_needs_a_login_and_renders_for_anyone_signed_in(name, client_for, nobody, engineer):
    assert client_for(None).get(reverse(name)).status_code == 302
    assert client_for(nobody).get(reverse(name)).status_code == 200
    assert client_for(engineer).get(reverse(name)).status_code == 200


@pytest.mark.parametrize(("who", "detail", "change"), [
    ("nobody", 404, 404), ("outsider", 404, 404), ("viewer", 200, 403), ("council_member", 200, 403),
    ("engineer", 200, 200), ("owner", 200, 200), ("admin_user", 200, 200),
])
def test_dataset_permission_matrix(who, detail, change, request, client_for, dataset):
    client = client_for(request.getfixturevalue(who))
    assert client.get(reverse("evals:dataset_detail", args=[dataset.pk])).status_code == detail
    assert client.get(reverse("evals:dataset_item_add", args=[dataset.pk])).status_code == change
    assert client.get(reverse("evals:dataset_import", args=[dataset.pk])).status_code == change


@pytest.mark.parametrize(("who", "status"), [
    ("nobody", 404), ("outsider", 404), ("viewer", 200), ("council_member", 200), ("engineer", 200),
    ("admin_user", 200),
])
def test_run_pages_follow_the_team(who, status, request, client_for, finished_run):
    client = client_for(request.getfixturevalue(who))
    assert client.get(reverse("evals:run_detail", args=[finished_run.pk])).status_code == status
    result = EvalResult.objects.filter(run=finished_run).first()
    assert client.get(reverse("evals:result_detail", args=[finished_run.pk, result.pk])).status_code == status


def test_lists_hide_other_teams_things(client_for, outsider, dataset, finished_run):
    page = client_for(outsider).get(reverse("evals:dataset_list")).content.decode()
    assert dataset.name not in page
    assert f"#{finished_run.pk}<" not in client_for(outsider).get(reverse("evals:run_list")).content.decode()


def test_only_engineers_of_the_team_may_cancel_or_start_runs(client_for, viewer, finished_run):
    assert client_for(viewer).post(reverse("evals:run_cancel", args=[finished_run.pk])).status_code == 403
    assert client_for(viewer).get(reverse("evals:run_create")).status_code == 403


def test_creating_a_dataset_and_adding_an_item_from_the_pages(client_for, engineer, team):
    client = client_for(engineer)
    response = client.post(reverse("evals:dataset_create"), {"team": team.pk, "name": "Bad Name"})
    assert response.status_code == 422 and "lower-case letters" in response.content.decode()
    response = client.post(reverse("evals:dataset_create"), {"team": team.pk, "name": "support/new-set",
                                                             "input_names": "question"})
    dataset = Dataset.objects.get(name="support/new-set")
    assert response.status_code == 302
    response = client.post(reverse("evals:dataset_item_add", args=[dataset.pk]),
                           {"inputs": '{"other": 1}', "expected": "x"})
    assert response.status_code == 422 and "question" in response.content.decode()
    response = client.post(reverse("evals:dataset_item_add", args=[dataset.pk]),
                           {"inputs": '{"question": "Why?"}', "expected": "Because.",
                            "contexts": "First passage.\n\nSecond passage.", "tags": "billing, edge"})
    assert response.status_code == 302
    item = dataset.items_at(1).get()
    assert item.contexts == ["First passage.", "Second passage."] and item.tags == ["billing", "edge"]


def test_the_import_page_lists_bad_rows_by_line_and_writes_nothing(client_for, engineer, dataset):
    content = b'{"inputs": {"question": "ok"}}\n{"inputs": []}\nnot json\n'
    response = client_for(engineer).post(reverse("evals:dataset_import", args=[dataset.pk]),
                                         {"file": SimpleUploadedFile("items.jsonl", content), "mode": "append"})
    html = response.content.decode()
    assert response.status_code == 422
    assert "2 of 3 rows cannot be imported" in html
    assert '<td class="num">2</td><td class="mono">inputs</td>' in html
    assert '<td class="num">3</td>' in html
    dataset.refresh_from_db()
    assert dataset.latest_revision == 1
    response = client_for(engineer).post(reverse("evals:dataset_import", args=[dataset.pk]), {
        "file": SimpleUploadedFile("items.jsonl", content), "mode": "append", "import_valid": "on"})
    assert response.status_code == 302
    dataset.refresh_from_db()
    assert dataset.latest_revision == 2


def test_an_upload_that_is_neither_csv_nor_jsonl_is_refused_at_the_field(client_for, engineer, dataset):
    response = client_for(engineer).post(reverse("evals:dataset_import", args=[dataset.pk]),
                                         {"file": SimpleUploadedFile("items.xlsx", b"PK..."), "mode": "append"})
    assert response.status_code == 422 and "Upload a .csv or .jsonl file." in response.content.decode()


def test_export_downloads_the_revision(client_for, viewer, dataset):
    response = client_for(viewer).get(reverse("evals:dataset_export", args=[dataset.pk, "jsonl"]))
    body = b"".join(response.streaming_content).decode()
    assert response.status_code == 200 and body.count("\n") == 3 and '"id": "refund"' in body


def test_starting_a_run_from_the_page(client_for, engineer, version, dataset, make_evaluator):
    evaluator = make_evaluator("cites", "citation")
    client = client_for(engineer)
    response = client.post(reverse("evals:run_create"), {
        "version": version.pk, "dataset": dataset.pk, "evaluators": [evaluator.pk], "repetitions": 2,
        "concurrency": 2, "input_map": "{not json"})
    assert response.status_code == 422 and "Not valid JSON" in response.content.decode()
    response = client.post(reverse("evals:run_create"), {
        "version": version.pk, "dataset": dataset.pk, "evaluators": [evaluator.pk], "repetitions": 2,
        "concurrency": 2, "input_map": ""})
    assert response.status_code == 302
    run = EvalRun.objects.get()
    assert (run.progress_total, run.repetitions, run.status) == (6, 2, "queued")  # the worker path: test_runs


def test_the_run_page_shows_aggregates_failures_and_reasons(client_for, viewer, finished_run):
    client = client_for(viewer)
    html = client.get(reverse("evals:run_detail", args=[finished_run.pk])).content.decode()
    assert 'id="aggregates"' in html and "95% CI" in html and "exact v1" in html
    failures = client.get(reverse("evals:run_detail", args=[finished_run.pk]) + "?failures=1",
                          HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in failures and 'data-verdict="fail"' in failures and 'data-verdict="pass"' not in failures
    assert "exact v1: expected" in failures


def test_the_progress_fragment_polls_while_active_and_refreshes_the_page_when_done(client_for, engineer,
                                                                                   version, dataset,
                                                                                   make_evaluator):
    run = run_create(actor=engineer, dataset=dataset, evaluators=[make_evaluator("c", "citation")],
                     target_ref={"version_id": version.pk}, enqueue=False)
    runner.run_start(run.pk)
    client = client_for(engineer)
    url = reverse("evals:run_progress", args=[run.pk]) + "?poll=1"
    active = client.get(url, HTTP_HX_REQUEST="true")
    assert 'hx-trigger="every 1s"' in active.content.decode() and "HX-Refresh" not in active
    assert "0</strong> / 3 done" in active.content.decode()
    runner.run_work(run.pk, threads=1)
    done = client.get(url, HTTP_HX_REQUEST="true")
    assert "every 1s" not in done.content.decode() and done["HX-Refresh"] == "true"


def _add_results(run, count):
    items = [{"inputs": {"question": f"q{i}"}} for i in range(count)]
    dataset_items_add(dataset=run.dataset, items=items)
    run.dataset.refresh_from_db()
    new = run.dataset.items_at().exclude(results__run=run)
    EvalResult.objects.bulk_create([EvalResult(run=run, item=item, status="done", output="x" * 50, passed=False,
                                               score=0.0, scores={"1": {"score": 0, "passed": False,
                                                                        "reason": "nope"}},
                                               position=item.position) for item in new])


def test_the_run_page_costs_a_constant_number_of_queries(client_for, viewer, finished_run,
                                                          django_assert_max_num_queries):
    client = client_for(viewer)
    url = reverse("evals:run_detail", args=[finished_run.pk])
    client.get(url)  # warm the session
    with django_assert_max_num_queries(14) as small:
        assert client.get(url).status_code == 200
    _add_results(finished_run, 300)
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert client.get(url).status_code == 200


def test_compare_page_highlights_regressions(client_for, viewer, engineer, prompt, version, dataset,
                                             make_evaluator):
    from apps.prompts.content import Draft
    from apps.prompts.services import version_create

    cites = make_evaluator("cites", "citation")
    v2 = version_create(prompt=prompt, actor=engineer, commit_message="worse",
                        draft=Draft(kind="text", template="Q: {{ question }}",
                                    config={"model": "local-extractive"})).version
    runs = []
    for v in (version, v2):
        run = run_create(actor=engineer, dataset=dataset, evaluators=[cites], target_ref={"version_id": v.pk},
                         enqueue=False)
        runs.append(runner.run_execute_inline(run.pk, threads=1))
    html = client_for(viewer).get(reverse("evals:compare") + f"?baseline={runs[0].pk}&candidate={runs[1].pk}"
                                  ).content.decode()
    assert html.count('data-change="regression"') == 3
    assert "McNemar" in html and "p = 0.250" in html  # 3 regressions, 0 improvements: 2 · (1/2)³
    assert client_for(viewer).get(reverse("evals:compare") + "?baseline=x").status_code == 400


def test_setting_a_gate_from_its_page(client_for, engineer, viewer, prompt, dataset, make_evaluator):
    cites = make_evaluator("cites", "citation")
    url = reverse("evals:gate_detail", args=[prompt.name])
    assert client_for(viewer).post(url, {}).status_code == 403
    response = client_for(engineer).post(url, {"datasets": [dataset.pk], "evaluators": [cites.pk],
                                               "min_pass_rate": "0.9", "max_regression": "0.05",
                                               "repetitions": "1", "input_map": "", "thresholds": ""})
    assert response.status_code == 302
    gate = EvalGate.objects.get(prompt=prompt)
    assert gate.version == 1 and gate.datasets[0]["revision"] == dataset.latest_revision
    response = client_for(engineer).post(url, {"datasets": [dataset.pk], "evaluators": [cites.pk],
                                               "min_pass_rate": "0.5", "max_regression": "0.05",
                                               "repetitions": "1", "keep_revisions": "1"})
    assert response.status_code == 422 and "Say why the gate changes" in response.content.decode()
    html = client_for(viewer).get(url).content.decode()
    assert 'id="gate-verdicts"' in html and "missing" in html


def test_dashboards_render_charts_tables_and_csv(client_for, viewer, finished_run):
    client = client_for(viewer)
    html = client.get(reverse("evals:dashboards")).content.decode()
    assert static("vendor/plotly-basic.min.js") in html and static("portal/charts.js") in html
    assert html.count('id="chart-trends"') == 1 and "data-chart>" in html and "Plotly.newPlot" not in html
    assert "support/faq-answer" in html
    csv_response = client.get(reverse("evals:dashboards") + "?csv=trends")
    assert csv_response["Content-Type"] == "text/csv"
    assert csv_response.content.decode().splitlines()[0].startswith("prompt,version,dataset")
    assert client.get(reverse("evals:dashboards") + "?csv=nope").status_code == 404


def test_saving_a_playground_run_as_a_dataset_item(client_for, engineer, version, dataset):
    from apps.prompts import registry
    from apps.prompts.models import PlaygroundRun

    run = PlaygroundRun.objects.create(version=version, batch="5f4c4a1e-0000-4000-8000-000000000000",
                                       user=engineer, inputs={"question": "Why?"}, model="local-extractive",
                                       output="Because [1].", status="ok")
    action = next(a for a in registry.playground_actions() if a.key == "evals_save_item")
    url = action.url(run=run, user=engineer)
    assert url == reverse("evals:from_playground", args=[run.pk])
    response = client_for(engineer).post(url, {"dataset": dataset.pk, "expected": "Because.", "tags": "playground"})
    assert response.status_code == 302
    item = dataset.items_at(2).get(source="playground")
    assert item.inputs == {"question": "Why?"} and item.expected == "Because." and item.tags == ["playground"]


def test_evaluators_are_created_and_versioned_from_the_pages(client_for, engineer, team):
    client = client_for(engineer)
    response = client.post(reverse("evals:evaluator_create"), {"team": team.pk, "name": "answer-regex",
                                                               "kind": "regex", "params": '{"pattern": "("}'})
    assert response.status_code == 422 and "not a valid regular expression" in response.content.decode()
    response = client.post(reverse("evals:evaluator_create"), {"team": team.pk, "name": "answer-regex",
                                                               "kind": "regex", "params": '{"pattern": "^A"}'})
    assert response.status_code == 302
    first = response.url
    response = client.post(first, {"params": '{"pattern": "^B"}', "threshold": "1"})
    assert response.status_code == 302 and response.url != first
    assert "v2" in client.get(response.url).content.decode()


def test_the_prompt_page_shows_the_eval_gate_panel(client_for, viewer, engineer, prompt, dataset, make_evaluator):
    from apps.evals.gates import gate_set

    html = client_for(viewer).get(reverse("prompts:detail", args=[prompt.name])).content.decode()
    assert "Eval gate" in html and "Set an eval gate" in html
    gate_set(prompt=prompt, actor=engineer, datasets=[{"dataset": dataset}],
             evaluators=[make_evaluator("cites", "citation")])
    html = client_for(viewer).get(reverse("prompts:detail", args=[prompt.name])).content.decode()
    assert "Gate v1" in html and "missing" in html


def test_latest_metric_reads_the_latest_finished_run(finished_run, prompt, dataset):
    from apps.evals.selectors import latest_metric

    assert latest_metric(prompt=prompt.name, dataset=dataset.name, metric="pass_rate") == finished_run.pass_rate
    assert latest_metric(prompt=prompt.name, dataset=dataset.name, metric="cites") == 1.0
    assert latest_metric(prompt=prompt.name, dataset=dataset.name, metric="nope") is None
    assert latest_metric(prompt="other", dataset=dataset.name, metric="pass_rate") is None


def test_the_feedback_page_shows_the_groundedness_products_sent(client_for, viewer, team):
    from tests.factories import FeedbackFactory

    FeedbackFactory(team=team, use_case_id=3, success=None, thumbs="", groundedness=0.75)
    page = client_for(viewer).get(reverse("evals:feedback_list")).content.decode()
    assert "<th class=\"num\">Groundedness</th>" in page and "75.0%" in page and "grounded 0.75" in page
