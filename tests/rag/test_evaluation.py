"""Retrieval evals: metrics, BEIR import, background runs with per-query drill-down, comparison, commands."""

import json
import math

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from apps.rag.config import RetrievalConfig
from apps.rag.evaluation import (
    dataset_import,
    documents_ranked,
    eval_run_create,
    eval_run_execute,
    mrr_at,
    ndcg_at,
    parse_qrels,
    recall_at,
)
from apps.rag.models import Collection, JobStatus, RetrievalEvalResult, RetrievalEvalRun

CORPUS = [
    {"_id": "d1", "title": "Aspirin", "text": "Aspirin reduces the risk of heart attacks in adults."},
    {"_id": "d2", "title": "Vitamin D", "text": "Vitamin D deficiency is linked to bone fractures."},
    {"_id": "d3", "title": "Coffee", "text": "Coffee consumption improves alertness but disturbs sleep."},
    {"_id": "d4", "title": "Exercise", "text": "Regular exercise lowers blood pressure and heart disease risk."},
    {"_id": "d5", "title": "Sleep", "text": "Poor sleep increases the risk of obesity and diabetes."},
]
QUERIES = [
    {"_id": "q1", "text": "aspirin heart attack risk"},
    {"_id": "q2", "text": "bone fractures and vitamin D"},
    {"_id": "q3", "text": "sleep and diabetes"},
    {"_id": "q4", "text": "a query with no judgement"},
]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td4\t1\nq2\td2\t1\nq3\td5\t2\nq3\td3\t0\n"


@pytest.fixture
def beir_dir(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in CORPUS))
    (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in QUERIES))
    (tmp_path / "qrels" / "test.tsv").write_text(QRELS)
    return tmp_path


def test_metrics_match_hand_computed_values():
    relevant = {"a": 2, "b": 1, "c": 0}
    ranked = ["x", "b", "a", "c"]
    dcg = 1 / math.log2(3) + 2 / math.log2(4)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at(ranked, relevant) == pytest.approx(dcg / ideal)
    assert recall_at(ranked, relevant, 1) == 0 and recall_at(ranked, relevant, 3) == 1
    assert mrr_at(ranked, relevant) == pytest.approx(0.5)
    assert ndcg_at(["x"], {"a": 0}) == 0.0


def test_documents_are_ranked_by_their_best_chunk():
    assert documents_ranked([5, 6, 7, 8], {5: "b", 6: "a", 7: "b", 8: "c"}) == ["b", "a", "c"]


def test_qrels_errors_name_their_line():
    with pytest.raises(ValidationError, match="qrels line 3"):
        parse_qrels("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\tmaybe\n")


@pytest.mark.django_db
def test_import_then_eval_commands_print_metrics_per_leg(beir_dir, team, local_models, capsys):
    call_command("rag_import_beir", collection="tiny", team=team.slug, dir=str(beir_dir))
    collection = Collection.objects.get(name="tiny")
    assert collection.chunk_count == 5 and collection.chunking["strategy"] == "whole"
    capsys.readouterr()
    call_command("rag_import_beir", collection="tiny", team=team.slug, dir=str(beir_dir))
    assert "nothing changed" in capsys.readouterr().out
    call_command("rag_eval", collection="tiny", dir=str(beir_dir), split="test")
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{"):])
    assert report["queries"] == 3
    for leg in ("bm25", "vector", "hybrid"):
        assert set(report[leg]) >= {"ndcg@10", "recall@100", "mrr@10"}
        assert 0 <= report[leg]["ndcg@10"] <= 1
    assert report["bm25"]["mrr@10"] == 1.0  # each query's words occur in its relevant document first
    assert report["bm25"]["recall@100"] == 1.0


@pytest.mark.django_db
def test_dataset_import_validates_and_a_background_run_drills_down(beir_dir, team, local_models, owner, client_for):
    call_command("rag_import_beir", collection="tiny", team=team.slug, dir=str(beir_dir))
    collection = Collection.objects.get(name="tiny")
    with pytest.raises(ValidationError) as info:
        dataset_import(collection=collection, name="", queries_text="nope", qrels_text="q1\td1\n")
    assert {"name", "queries", "qrels"} <= set(info.value.message_dict)
    dataset = dataset_import(collection=collection, name="tiny-test", split="test", user=owner,
                             queries_text=(beir_dir / "queries.jsonl").read_text(), qrels_text=QRELS)
    assert dataset.query_count == 3 and dataset.judgement_count == 5
    runs = []
    for label, config in (("bm25 default", RetrievalConfig(fusion="rrf")), ("convex", RetrievalConfig(alpha=0.3))):
        run = eval_run_create(dataset=dataset, config=config, label=label, user=owner)
        eval_run_execute(run.pk)
        run.refresh_from_db()
        assert run.status == JobStatus.SUCCEEDED and run.progress_done == 3
        assert set(run.metrics) == {"bm25", "vector", "hybrid"}
        runs.append(run)
    assert RetrievalEvalResult.objects.filter(run=runs[0]).count() == 9  # 3 queries x 3 legs
    c = client_for(owner)
    page = c.get(f"/rag/{collection.pk}/evals/runs/{runs[0].pk}/?leg=bm25").content.decode()
    assert "q1" in page and "d4" in page and 'id="run-metrics"' in page
    compare = c.get(f"/rag/{collection.pk}/evals/compare/?run={runs[0].pk}&run={runs[1].pk}").content.decode()
    assert "fusion" in compare and "alpha" in compare and "hybrid · ndcg@10" in compare
    csv = c.get(f"/rag/{collection.pk}/evals/runs/{runs[0].pk}/csv/").content.decode()
    assert csv.splitlines()[0].startswith("query_id,leg,ndcg@10")


@pytest.mark.django_db
def test_eval_run_page_polls_while_running(beir_dir, team, local_models, owner, client_for):
    call_command("rag_import_beir", collection="tiny", team=team.slug, dir=str(beir_dir))
    collection = Collection.objects.get(name="tiny")
    dataset = dataset_import(collection=collection, name="d", queries_text=(beir_dir / "queries.jsonl").read_text(),
                             qrels_text=QRELS)
    run = eval_run_create(dataset=dataset, config=RetrievalConfig(), user=owner)
    page = client_for(owner).get(f"/rag/{collection.pk}/evals/runs/{run.pk}/").content.decode()
    assert 'hx-trigger="every 1s"' in page
    eval_run_execute(run.pk)
    fragment = client_for(owner).get(f"/rag/{collection.pk}/evals/runs/{run.pk}/?fragment=progress",
                                     HTTP_HX_REQUEST="true").content.decode()
    assert "every 1s" not in fragment and "run-metrics" in fragment


@pytest.mark.django_db
def test_eval_runs_through_the_views(beir_dir, team, local_models, owner, client_for):
    call_command("rag_import_beir", collection="tiny", team=team.slug, dir=str(beir_dir))
    collection = Collection.objects.get(name="tiny")
    from django.core.files.uploadedfile import SimpleUploadedFile

    c = client_for(owner)
    response = c.post(f"/rag/{collection.pk}/evals/datasets/", {
        "name": "views", "split": "test",
        "queries": SimpleUploadedFile("queries.jsonl", (beir_dir / "queries.jsonl").read_bytes()),
        "qrels": SimpleUploadedFile("test.tsv", QRELS.encode())})
    assert response.status_code == 302
    dataset = collection.datasets.get(name="views")
    fields = {f"cfg-{k}": v for k, v in RetrievalConfig().as_dict().items() if k not in ("filters", "mmr", "rerank")}
    response = c.post(f"/rag/{collection.pk}/evals/runs/", {"dataset": dataset.pk, "label": "from the page", **fields})
    assert response.status_code == 302
    run = RetrievalEvalRun.objects.get(label="from the page")
    assert run.status == JobStatus.QUEUED


@pytest.mark.django_db
def test_the_rag_collection_eval_target_is_registered_and_answers_an_item(beir_dir, team, local_models, owner):
    from types import SimpleNamespace

    from apps.evals.targets import get_target

    call_command("rag_import_beir", collection="tiny", team=team.slug, dir=str(beir_dir))
    collection = Collection.objects.get(name="tiny")
    target = get_target("rag_collection")
    ref = {"collection_id": collection.pk, "config": {"k": 2}}
    description = target.describe_fn(ref)
    assert description.team_id == team.pk and description.default_model == "local-extractive"
    with pytest.raises(ValidationError):
        target.describe_fn({"collection_id": 999999})
    state = target.prepare_fn(SimpleNamespace(target_ref=ref))
    run = SimpleNamespace(pk=1, created_by=owner, created_by_id=owner.pk, model="", target_ref=ref)
    item = SimpleNamespace(inputs={"question": "Does aspirin reduce heart attacks?"})
    output = target.run_fn(run, item, 0, state)
    assert "[1]" in output.output and len(output.contexts) == 2
    assert "Aspirin" in output.contexts[0]
