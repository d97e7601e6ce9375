"""The demo evals: golden sets, finished runs against the offline model, a regression, gates; idempotent."""

from apps.evals.demo import ANSWER_PROMPT, REGRESSION_MESSAGE, seed_demo_evals
from apps.evals.gates import gate_evaluate, production_version
from apps.evals.models import Dataset, EvalGate, EvalRun, Feedback, RunStatus
from apps.evals.seed import ADVERSARIAL_NAME


def test_the_demo_seeds_sets_runs_a_regression_and_gates_and_is_idempotent(db):
    from apps.prompts.demo import seed_demo_prompts
    from apps.prompts.models import Prompt
    from portal.demo import seed_demo_accounts, seed_demo_models

    accounts = seed_demo_accounts()
    seed_demo_models()
    seed_demo_prompts(accounts["people"], accounts["teams"])
    seed_demo_evals(accounts["people"], accounts["teams"])

    assert Dataset.objects.filter(name=ADVERSARIAL_NAME, shared=True, latest_revision=1).exists()
    assert Dataset.objects.filter(name="search/kb-answers-golden").exists()
    runs = EvalRun.objects.filter(status=RunStatus.FINISHED)
    assert runs.count() >= 4
    from apps.evals.models import EvalResult

    assert not EvalResult.objects.exclude(error="").exists()  # no demo run fails items (e.g. a missing variable)
    prompt = Prompt.objects.get(name=ANSWER_PROMPT)
    gate = EvalGate.objects.get(prompt=prompt)
    production = production_version(prompt)
    assert gate_evaluate(gate, production).passed
    worse = prompt.versions.get(commit_message=REGRESSION_MESSAGE)
    verdict = gate_evaluate(gate, worse)
    assert verdict.status == "failed" and "regression" in verdict.summary()
    assert EvalGate.objects.count() >= 2
    assert EvalRun.objects.filter(dataset__name=ADVERSARIAL_NAME, status=RunStatus.FINISHED).exists()
    assert Feedback.objects.count() == 6

    counts = (EvalRun.objects.count(), Dataset.objects.count(), Feedback.objects.count(), prompt.versions.count())
    seed_demo_evals(accounts["people"], accounts["teams"])
    assert (EvalRun.objects.count(), Dataset.objects.count(), Feedback.objects.count(),
            prompt.versions.count()) == counts

    # Every page renders with the demo data, for an admin and for a product manager (viewer of both teams).
    from django.test import Client
    from django.urls import reverse

    from apps.evals.models import EvalResult, EvaluatorDefinition

    for username in ("admin", "pat"):
        client = Client()
        client.force_login(accounts["people"][username])
        urls = [reverse(name) for name in ("evals:list", "evals:dataset_list", "evals:evaluator_list",
                                           "evals:run_list", "evals:gate_list", "evals:dashboards",
                                           "evals:feedback_list")]
        urls += [reverse("evals:dataset_detail", args=[d.pk]) for d in Dataset.objects.all()]
        urls += [reverse("evals:evaluator_detail", args=[e.pk]) for e in EvaluatorDefinition.objects.all()]
        urls += [reverse("evals:gate_detail", args=[g.prompt.name]) for g in EvalGate.objects.all()]
        for run in EvalRun.objects.all():
            urls.append(reverse("evals:run_detail", args=[run.pk]))
            result = EvalResult.objects.filter(run=run).first()
            urls.append(reverse("evals:result_detail", args=[run.pk, result.pk]))
        base, bad = (EvalRun.objects.get(prompt_version=v, dataset__name="search/kb-answers-golden")
                     for v in (production, worse))
        urls.append(reverse("evals:compare") + f"?baseline={base.pk}&candidate={bad.pk}")
        for url in urls:
            assert client.get(url).status_code == 200, (username, url)
    html = client.get(reverse("evals:dashboards")).content.decode()
    assert ANSWER_PROMPT in html and "support/escalation-classifier" in html


    # The obvious first run (support/refund-policy-qa v1 × support/refund-golden) is prefilled and accepted.
    from apps.evals.selectors import input_map_prefill
    from apps.evals.services import run_create
    from apps.prompts.models import PromptVersion

    version = PromptVersion.objects.get(prompt__name="support/refund-policy-qa", number=1)
    dataset = Dataset.objects.get(name="support/refund-golden")
    mapping = input_map_prefill(version=version, dataset=dataset)
    assert mapping == {"policy": "context"}
    run = run_create(actor=accounts["people"]["evan"], dataset=dataset, target_ref={"version_id": version.pk},
                     evaluators=list(version.prompt.eval_gate.evaluators.all()), input_map=mapping, enqueue=False)
    assert run.progress_total == dataset.items.count()
