from apps.experiments import selectors
from apps.experiments.demo import seed_demo_experiments
from apps.experiments.models import Experiment, Status
from apps.reviews.models import State, UseCase, UseCasePrompt


def test_the_demo_runs_one_experiment_with_traffic_and_outcomes_on_the_demo_use_case_and_is_idempotent(
        prompt, team, engineer):
    use_case = UseCase.objects.create(team=team, title="Ticket triage summaries", state=State.ACTIVE)
    UseCasePrompt.objects.create(use_case=use_case, prompt=prompt)  # as the reviews demo links them
    people, teams = {"evan": engineer}, {"support-ai": team}
    assert seed_demo_experiments(people, teams) == 1
    experiment = Experiment.objects.get()
    assert experiment.status == Status.RUNNING and experiment.use_case_id == use_case.pk
    result = selectors.comparison(experiment)
    assert result["enough"] and all(arm["calls"] and arm["outcomes"] for arm in result["arms"])
    assert result["winner"] == "candidate"  # the demo shows a winner to promote
    assert result["trustworthy"] and all(0 < arm["units"] < arm["calls"] for arm in result["arms"])  # per user
    assert all(arm["latency"]["p95"]["value"] and arm["safety"]["k"] for arm in result["arms"])
    assert seed_demo_experiments(people, teams) == 0
