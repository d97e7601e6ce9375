"""LLM-judge calibration: human-labelled samples, the judge's verdicts, agreement and Cohen's kappa."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.evals.models import JudgeLabel
from apps.evals.services import calibration_summary, judge_calibrate, judge_label_add


@pytest.fixture
def judge(make_evaluator, standin, standin_model):
    standin.responder = lambda messages: "SCORE: 5\nREASON: good" if "GOOD" in messages[-1]["content"] \
        else "SCORE: 1\nREASON: bad"
    return make_evaluator("helpfulness", "llm_judge", {"model": standin_model.name}, 0.75)


def test_the_judges_agreement_with_humans_is_cohens_kappa(judge, engineer):
    for output, human in (("GOOD answer", True), ("GOOD too", True), ("poor", False), ("poor but fine", True)):
        judge_label_add(evaluator=judge, output=output, human_passed=human, actor=engineer)
    summary = judge_calibrate(evaluator=judge)
    # judge: T T F F; human: T T F T → po 0.75, pe 0.75·0.5 + 0.25·0.5 = 0.5 → κ 0.5
    assert summary["judged"] == 4 and summary["agreement"] == pytest.approx(0.75)
    assert summary["kappa"] == pytest.approx(0.5) and summary["reading"] == "moderate"
    assert JudgeLabel.objects.filter(judge_passed=True).count() == 2


def test_a_judge_on_the_offline_model_is_not_calibrated_with_invented_scores(make_evaluator, engineer, local_models):
    judge = make_evaluator("offline-judge", "llm_judge", {"model": "local-extractive"}, 0.75)
    judge_label_add(evaluator=judge, output="x", human_passed=True, actor=engineer)
    summary = judge_calibrate(evaluator=judge)
    assert summary["judged"] == 0 and summary["kappa"] is None and "cannot judge" in summary["unjudged_reason"]


def test_only_judges_take_labels(make_evaluator, engineer):
    with pytest.raises(ValidationError):
        judge_label_add(evaluator=make_evaluator("exact", "exact_match"), output="x", human_passed=True,
                        actor=engineer)


def test_the_judge_page_shows_the_calibration(judge, engineer, viewer, client_for):
    judge_label_add(evaluator=judge, output="GOOD", human_passed=True, actor=engineer)
    judge_label_add(evaluator=judge, output="poor", human_passed=False, actor=engineer)
    judge_calibrate(evaluator=judge)
    html = client_for(viewer).get(reverse("evals:evaluator_detail", args=[judge.pk])).content.decode()
    assert 'id="calibration"' in html and "Cohen" in html and "1.00" in html
    assert client_for(viewer).post(reverse("evals:judge_label_add", args=[judge.pk]),
                                   {"output": "x", "human_passed": "1"}).status_code == 403
    assert calibration_summary([])["kappa"] is None
