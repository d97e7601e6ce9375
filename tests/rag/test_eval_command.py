"""`rag_eval` over one or several BEIR folders (each collection + the macro average), its refusals, and the
per-query file that lets fusion be recomputed outside the portal; `rag_import_beir`'s team refusal."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.rag.evaluation import macro_metrics
from apps.rag.management.commands.rag_eval import parse_legs
from apps.rag.services import collection_create
from tests.rag.test_evaluation import CORPUS, QRELS, QUERIES


def _beir(folder, corpus=CORPUS, qrels=QRELS):
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in corpus))
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in QUERIES))
    (folder / "qrels" / "test.tsv").write_text(qrels)
    return folder


def _report(capsys) -> dict:
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


@pytest.mark.parametrize("raw", ["hybird", "bm25,vectors", "", " , "])
def test_unknown_or_no_legs_are_refused_with_the_valid_names(raw):
    with pytest.raises(CommandError, match="choose from bm25, vector, hybrid"):
        parse_legs(raw)


def test_legs_keep_their_order_without_repeats():
    assert parse_legs("hybrid, bm25,hybrid") == ("hybrid", "bm25")


@pytest.mark.django_db
def test_rag_eval_refuses_an_unknown_leg_before_doing_anything(tmp_path):
    per_query = tmp_path / "out.jsonl"
    with pytest.raises(CommandError, match="Unknown --legs 'hybird'"):
        call_command("rag_eval", collection="nothing-here", dir=[str(tmp_path)], legs="hybird",
                     per_query=str(per_query))
    assert not per_query.exists()


@pytest.mark.django_db
def test_several_dirs_give_each_collection_and_the_macro_average(tmp_path, team, local_models, capsys):
    # the second collection judges q1 by a document that does not answer it: its figures differ
    first = _beir(tmp_path / "alpha")
    second = _beir(tmp_path / "beta", qrels=QRELS.replace("q1\td1\t1", "q1\td3\t1"))
    for folder in (first, second):  # both created before any indexing: a collection's HNSW index is DDL
        collection_create(team=team, name=folder.name, embedding_model="local-minilm", chunking={"strategy": "whole"})
    for folder in (first, second):
        call_command("rag_import_beir", collection=folder.name, team=team.slug, dir=str(folder))
    capsys.readouterr()
    per_query = tmp_path / "ranked.jsonl"
    call_command("rag_eval", dir=[str(first), str(second)], legs="bm25,hybrid", per_query=str(per_query))
    report = _report(capsys)
    assert [c["collection"] for c in report["collections"]] == ["alpha", "beta"]
    assert set(report["macro"]) == {"bm25", "hybrid"}
    for leg in ("bm25", "hybrid"):
        for metric in ("ndcg@10", "recall@100", "mrr@10"):
            values = [c[leg][metric] for c in report["collections"]]
            assert report["macro"][leg][metric] == pytest.approx(sum(values) / 2, abs=1e-4)
    assert report["collections"][0]["bm25"]["ndcg@10"] != report["collections"][1]["bm25"]["ndcg@10"]

    rows = [json.loads(line) for line in per_query.read_text().splitlines()]
    assert {(r["collection"], r["leg"]) for r in rows} == {(c, leg) for c in ("alpha", "beta")
                                                           for leg in ("bm25", "hybrid")}
    q1 = next(r for r in rows if r["collection"] == "alpha" and r["leg"] == "bm25" and r["query"] == "q1")
    assert q1["ranked"][0][0] == "d1"  # the leg's own ranking: documents with their scores, best first
    scores = [score for _, score in q1["ranked"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0


@pytest.mark.django_db
def test_one_collection_name_per_dir_or_none(tmp_path):
    with pytest.raises(CommandError, match="2 --collection for 1 --dir"):
        call_command("rag_eval", collection=["a", "b"], dir=[str(tmp_path)])


def test_macro_is_the_unweighted_mean_over_collections():
    small = {"bm25": {"ndcg@10": 0.2, "recall@10": 0.1, "recall@100": 0.5, "mrr@10": 0.3}}
    large = {"bm25": {"ndcg@10": 0.6, "recall@10": 0.3, "recall@100": 0.7, "mrr@10": 0.5}}
    assert macro_metrics([small, large]) == {"bm25": {"ndcg@10": 0.4, "recall@10": 0.2, "recall@100": 0.6,
                                                      "mrr@10": 0.4}}


@pytest.mark.django_db
def test_import_names_the_existing_teams_when_the_team_is_unknown(tmp_path, team):
    folder = _beir(tmp_path / "corpus")
    with pytest.raises(CommandError, match=f"There is no team 'nobody'. Teams: .*{team.slug}.*portal_setup"):
        call_command("rag_import_beir", collection="x", team="nobody", dir=str(folder))
