"""Links to collections and eval runs: the collection predicates, the eval-metric predicate on a real run, and
material change when a collection's data becomes more sensitive."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.reviews import conditions as predicates
from apps.reviews import linking, services
from apps.reviews.models import State
from tests.factories import ModelFactory


@pytest.fixture
def collection(team):
    from apps.rag.models import Collection

    embedder = ModelFactory(name="minilm-test", kind="embedding")
    return Collection.objects.create(team=team, name="Help centre", data_class="internal", embedding_model=embedder,
                                     embedding_dimensions=384)


@pytest.fixture
def other_collection(other_team):
    from apps.rag.models import Collection

    embedder = ModelFactory(name="minilm-test", kind="embedding")
    return Collection.objects.create(team=other_team, name="Secret", data_class="pii", embedding_model=embedder,
                                     embedding_dimensions=384)


def test_link_a_collection_and_flag_a_more_sensitive_data_class(make_use_case, collection, engineer, product,
                                                               approve):
    use_case = make_use_case(submit=True)
    linking.collection_link(use_case=use_case, actor=engineer, collection=collection)
    with pytest.raises(ValidationError):
        linking.collection_link(use_case=use_case, actor=engineer, collection=collection)
    approve(use_case, product)
    assert linking.material_change_scan() == 0
    collection.data_class = "public"
    collection.save()
    assert linking.material_change_scan() == 0  # less sensitive is not material
    collection.data_class = "pii"
    collection.save()
    assert linking.material_change_scan() == 1
    use_case.refresh_from_db()
    assert use_case.rereview_flag["diff"] == {"data_class": ["internal", "pii"]}
    assert use_case.state == State.REVIEW_DUE  # the team can resubmit; prompts keep serving meanwhile
    resubmitted = services.use_case_submit(use_case=use_case, actor=engineer)
    assert resubmitted.rereview_flag is None and resubmitted.state == State.IN_REVIEW
    assert linking.material_change_scan() == 0  # flagged once


def test_cannot_link_a_collection_one_cannot_see(make_use_case, other_collection, engineer):
    with pytest.raises(PermissionDenied):
        linking.collection_link(use_case=make_use_case(), actor=engineer, collection=other_collection)


def test_collection_predicates(make_use_case, collection):
    use_case = make_use_case()
    ok = predicates.evaluate("collection_data_class", use_case, {"collection_id": collection.pk,
                                                                 "max_class": "confidential"})
    assert ok.passed is True and ok.value == "internal"
    too_much = predicates.evaluate("collection_data_class", use_case, {"collection_id": collection.pk,
                                                                       "max_class": "public"})
    assert too_much.passed is False
    clean = predicates.evaluate("collection_no_pii", use_case, {"collection_id": collection.pk})
    assert clean.passed is True and clean.value == 0
    gone = predicates.evaluate("collection_no_pii", use_case, {"collection_id": 999999})
    assert gone.passed is False


def test_eval_metric_reads_the_latest_finished_run(make_use_case, team, engineer):
    from django.utils import timezone

    from apps.evals.models import Dataset, EvalRun
    from apps.prompts.content import Draft
    from apps.prompts.services import prompt_create

    prompt = prompt_create(team=team, name="support/grounded", kind="text", actor=engineer,
                           draft=Draft(kind="text", template="a <t>{{ x }}</t>"), commit_message="1")
    dataset = Dataset.objects.create(team=team, name="golden-tickets")
    params = {"prompt": prompt.name, "dataset": dataset.name, "metric": "groundedness", "min": 0.9}
    use_case = make_use_case()
    assert predicates.evaluate("eval_metric", use_case, params).passed is False  # no run yet
    summary = {"evaluators": [{"name": "groundedness", "mean_score": {"value": 0.93}, "pass_rate": 0.9}]}
    EvalRun.objects.create(team=team, prompt=prompt, dataset=dataset, dataset_revision=1, model="local",
                           config_hash="x", evaluator_signature="y", status="finished", summary=summary,
                           pass_rate=0.9, mean_score=0.93, target_label=prompt.name, finished_at=timezone.now())
    result = predicates.evaluate("eval_metric", use_case, params)
    assert result.passed is True and result.value == pytest.approx(0.93)
    lower = predicates.evaluate("eval_metric", use_case, {**params, "min": 0.95})
    assert lower.passed is False and "<" in lower.detail


def test_collection_link_through_the_page(client_for, make_use_case, collection, engineer):
    use_case = make_use_case()
    c = client_for(engineer)
    page = c.get(f"/use-cases/{use_case.pk}/").content.decode()
    assert "Help centre" in page and "Eval runs of the linked prompts" in page
    c.post(f"/use-cases/{use_case.pk}/collections/", {"collection": collection.pk})
    assert use_case.collection_links.filter(collection=collection).exists()
    c.post(f"/use-cases/{use_case.pk}/collections/", {"collection": "zzz"})
    c.post(f"/use-cases/{use_case.pk}/collections/", {"unlink": collection.pk})
    assert not use_case.collection_links.exists()
    assert use_case.state == State.DRAFT
