"""The run page with 10,000 item results: server time and query count (must not grow with the results).

Generates once in `portal_bench`: a dataset of 10,000 items and a finished run with 10,000 results scored by
three evaluators (aggregates computed by the real finalize step), plus a 10-result run to compare query
counts. Times `GET /evals/runs/<id>/` through Django's full request stack (Client, DEBUG off): the page, the
failures filter, and the htmx fragment. Goal: p95 < 300 ms server time.

Usage: python -m bench.evals_page [--requests 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from bench.common import client_get_times, client_queries, setup_django, use_bench_database

DATABASE = "portal_bench_evals"  # its own database: other benches' data and migrations do not interfere
BIG = 10_000
SMALL = 10


def _make_run(team, user, version, evaluators, name: str, size: int):
    from django.db import transaction

    from apps.evals import runner
    from apps.evals.datasets import dataset_create, dataset_items_add
    from apps.evals.models import Dataset, EvalResult, EvalRun
    from apps.evals.services import run_create

    dataset = Dataset.objects.filter(name=name).first()
    if dataset is not None:
        run = EvalRun.objects.filter(dataset=dataset, status="finished").first()
        if run is not None:
            return run, 0.0
    started = time.monotonic()
    if dataset is None:
        dataset = dataset_create(team=team, name=name, actor=user)
        for start in range(0, size, 5000):
            dataset_items_add(dataset=dataset, actor=user, items=[
                {"id": f"item-{i:05d}", "inputs": {"question": f"Question {i}: how long do refunds take?"},
                 "expected": "Refunds take 5 days.", "contexts": ["Refunds take 5 days."], "tags": ["bench"]}
                for i in range(start, min(size, start + 5000))])
            dataset.refresh_from_db()
    run = run_create(actor=user, dataset=dataset, evaluators=evaluators, target_ref={"version_id": version.pk},
                     enqueue=False)
    runner.run_start(run.pk)
    rows = list(EvalResult.objects.filter(run=run).values_list("id", "position"))
    with transaction.atomic():
        updates = []
        for rid, position in rows:
            ok = position % 7 != 0
            scores = {str(e.pk): {"score": 1.0 if ok else 0.0, "passed": ok,
                                  "reason": "" if ok else f"expected 'Refunds take 5 days.', got 'Instant {position}'"}
                      for e in evaluators}
            updates.append(EvalResult(pk=rid, status="done", output="Refunds take 5 days [1]." if ok else
                                      f"Instant {position}", latency_ms=180 + position % 50, scores=scores,
                                      score=1.0 if ok else 0.0, passed=ok, input_tokens=40, output_tokens=8))
        EvalResult.objects.bulk_update(updates, ["status", "output", "latency_ms", "scores", "score", "passed",
                                                 "input_tokens", "output_tokens"], batch_size=2000)
    runner.run_finalize(run.pk)
    return EvalRun.objects.get(pk=run.pk), time.monotonic() - started


def seed():
    from django.contrib.auth import get_user_model

    from apps.accounts.models import Membership, Role, Team
    from apps.core.request_context import acting_as
    from apps.evals.models import EvaluatorDefinition
    from apps.evals.services import evaluator_create
    from apps.llm.services import catalog_seed_local
    from apps.prompts.content import Draft
    from apps.prompts.models import Prompt
    from apps.prompts.services import prompt_create

    catalog_seed_local()
    team, _ = Team.objects.get_or_create(slug="bench-evals-page", defaults={"name": "Bench evals page"})
    user, _ = get_user_model().objects.get_or_create(username="bench-evals-page-engineer")
    viewer, _ = get_user_model().objects.get_or_create(username="bench-evals-page-viewer")
    Membership.objects.get_or_create(team=team, user=user, defaults={"role": Role.ENGINEER})
    Membership.objects.get_or_create(team=team, user=viewer, defaults={"role": Role.VIEWER})
    with acting_as(user):
        prompt = Prompt.objects.filter(name="bench/evals-page").first() or prompt_create(
            team=team, name="bench/evals-page", actor=user, commit_message="bench",
            draft=Draft(kind="text", template="Context:\n{{ context }}\nQuestion: {{ question }}"))
        evaluators = []
        for name, kind in (("bench-page-exact", "exact_match"), ("bench-page-cites", "citation"),
                           ("bench-page-close", "levenshtein")):
            evaluators.append(EvaluatorDefinition.objects.filter(team=team, name=name).first()
                              or evaluator_create(team=team, name=name, kind=kind, actor=user))
        version = prompt.versions.get(number=1)
        big, big_s = _make_run(team, user, version, evaluators, "bench/evals-page-10k", BIG)
        small, _ = _make_run(team, user, version, evaluators, "bench/evals-page-10", SMALL)
    return viewer, big, small, big_s


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args(argv)
    use_bench_database(DATABASE)
    setup_django(DATABASE)
    from django.test import Client

    viewer, big, small, generated_s = seed()
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(viewer)
    page = f"/evals/runs/{big.pk}/"
    client.get(page)  # warm up: templates, session
    out = {
        "results": big.progress_total, "generated_s": round(generated_s, 1), "goal_p95_ms": 300,
        "page": client_get_times(client, page, args.requests),
        "failures_filter": client_get_times(client, page + "?failures=1", args.requests),
        "htmx_fragment_page_50": client_get_times(client, page + "?page=50", args.requests, HTTP_HX_REQUEST="true"),
        "queries_10000_results": client_queries(client, page),
        "queries_10_results": client_queries(client, f"/evals/runs/{small.pk}/"),
    }
    out["constant_queries"] = out["queries_10000_results"] == out["queries_10_results"]
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
