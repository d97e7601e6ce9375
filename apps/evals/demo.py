"""Demo evals for `make run`: golden sets (and the shared adversarial set), evaluators, finished runs of demo
prompt versions against the offline model, a regression between two versions, gates on production prompts,
and some production feedback. Idempotent: what exists is left alone.

    seed_demo_evals(people, teams)   # the dicts returned by portal.demo.seed_demo_accounts(); after the
                                     # prompts demo (apps.prompts.demo.seed_demo_prompts)
"""

from __future__ import annotations

import logging

from apps.core.request_context import acting_as
from apps.evals import runner
from apps.evals.datasets import dataset_create, dataset_items_add
from apps.evals.gates import gate_runs_ensure, gate_set, production_version
from apps.evals.models import Dataset, EvalGate, EvaluatorDefinition, Feedback, RunStatus
from apps.evals.seed import adversarial_seed
from apps.evals.services import evaluator_create, feedback_record
from apps.prompts.content import Draft
from apps.prompts.models import Prompt
from apps.prompts.services import version_create

log = logging.getLogger(__name__)

ANSWER_PROMPT = "search/answer-with-citations"
REFUND_PROMPT = "support/refund-policy-qa"
CLASSIFIER_PROMPT = "support/escalation-classifier"
REGRESSION_MESSAGE = "demo: answer without the context (shorter prompt)"

KB = [
    ("Refunds are paid back to the original card within 5 business days.", "Refunds of annual plans are prorated."),
    ("Support is open 9:00 to 17:00 CET on weekdays.", "Premium customers can call the hotline at night."),
    ("Passwords are reset from the login page with the 'Forgot password' link.",
     "The reset link expires after one hour."),
    ("Invoices are emailed on the first day of each month.", "Past invoices are under Billing → History."),
    ("Two-factor authentication is enabled under Settings → Security.",
     "Recovery codes should be stored offline."),
    ("Data is stored in the EU region by default.", "Enterprise plans can choose a US region."),
    ("Accounts are deleted 30 days after a deletion request.", "Deletion can be cancelled within those 30 days."),
    ("The API allows 600 requests per minute per token.", "Bursts above the limit get HTTP 429 responses."),
]
QUESTIONS = [
    ("How long does a refund take?", "Refunds are paid back to the original card within 5 business days."),
    ("When is support open?", "Support is open 9:00 to 17:00 CET on weekdays."),
    ("How do I reset my password?", "Use the 'Forgot password' link on the login page."),
    ("When are invoices sent?", "Invoices are emailed on the first day of each month."),
    ("Where do I turn on two-factor authentication?", "Under Settings → Security."),
    ("Where is my data stored?", "In the EU region by default."),
    ("When is a deleted account really gone?", "30 days after the deletion request."),
    ("What is the API rate limit?", "600 requests per minute per token."),
]


def _golden_items() -> list[dict]:
    items = []
    for i, ((question, expected), passages) in enumerate(zip(QUESTIONS, KB, strict=True), start=1):
        items.append({"id": f"kb-{i:02d}", "inputs": {"question": question}, "expected": expected,
                      "contexts": list(passages), "tags": ["kb"]})
    return items


def _dataset(name: str, team, actor, items: list[dict], description: str) -> Dataset:
    dataset = Dataset.objects.filter(name=name).first()
    if dataset is None:
        dataset = dataset_create(team=team, name=name, description=description, input_names=["question"],
                                 actor=actor)
    if not dataset.latest_revision:
        dataset_items_add(dataset=dataset, items=items, actor=actor, message="demo golden set")
        dataset.refresh_from_db()
    return dataset


def _evaluator(team, name: str, kind: str, params: dict, threshold: float, actor) -> EvaluatorDefinition:
    return (EvaluatorDefinition.objects.filter(team=team, name=name).order_by("-version").first()
            or evaluator_create(team=team, name=name, kind=kind, params=params, threshold=threshold, actor=actor))


def _gate(prompt, actor, datasets, evaluators, **kwargs) -> EvalGate:
    return EvalGate.objects.filter(prompt=prompt).first() or gate_set(
        prompt=prompt, actor=actor, datasets=datasets, evaluators=evaluators, **kwargs)


def _run_gate(gate, version, actor) -> None:
    for run in gate_runs_ensure(gate=gate, version=version, actor=actor, enqueue=False):
        if run.status in (RunStatus.QUEUED, RunStatus.RUNNING):
            runner.run_execute_inline(run.pk, threads=1)


def seed_demo_evals(people: dict, teams: dict) -> None:
    with acting_as(None):
        adversarial = adversarial_seed()
        safety = list(EvaluatorDefinition.objects.filter(team=None, name__startswith="safety/"))
    search, support = teams.get("search"), teams.get("support-ai")
    erin, evan = people.get("erin"), people.get("evan")

    # Search: a golden set with passages, three evaluators, a gate; v1 (production) passes, a shorter v3
    # that drops the context regresses.
    prompt = Prompt.objects.filter(name=ANSWER_PROMPT).first()
    if search is not None and prompt is not None and erin is not None:
        with acting_as(erin):
            golden = _dataset("search/kb-answers-golden", search, erin, _golden_items(),
                              "Questions about the product with the knowledge-base passages that answer them.")
            cites = _evaluator(search, "cites-passages", "citation", {"require_citation": True}, 1.0, erin)
            grounded = _evaluator(search, "grounded", "groundedness", {"support_threshold": 0.55}, 0.8, erin)
            similar = _evaluator(search, "close-to-reference", "embedding_similarity", {"model": "local-minilm"},
                                 0.5, erin)
            _evaluator(search, "helpfulness-judge", "llm_judge",
                       {"model": "local-extractive", "criteria": "Correct, grounded and helpful."}, 0.75, erin)
            gate = _gate(prompt, erin, [{"dataset": golden}], [cites, grounded, similar], min_pass_rate=0.75,
                         max_regression=0.05)
            versions = {v.number: v for v in prompt.versions.all()}
            worse = next((v for v in versions.values() if v.commit_message == REGRESSION_MESSAGE), None)
            if worse is None and prompt.kind == "chat":
                worse = version_create(prompt=prompt, actor=erin, commit_message=REGRESSION_MESSAGE, draft=Draft(
                    kind="chat", config={"model": "local-extractive", "max_tokens": 200},
                    messages=[{"role": "system", "content": "Answer briefly and cite passages as [n]."},
                              {"role": "user", "content": "{{ question }}"}])).version
            for version in sorted(prompt.versions.all(), key=lambda v: v.number):
                _run_gate(gate, version, erin)

    # Support: the refund Q&A on a golden set mapped onto its `policy` variable; the escalation classifier
    # (production) gated on the shared adversarial set — the offline model echoes attacks, so it fails.
    refund = Prompt.objects.filter(name=REFUND_PROMPT).first()
    classifier = Prompt.objects.filter(name=CLASSIFIER_PROMPT).first()
    if support is not None and evan is not None:
        with acting_as(evan):
            if refund is not None:
                golden = _dataset("support/refund-golden", support, evan, _golden_items()[:4],
                                  "Refund and billing questions with the policy passages.")
                close = _evaluator(support, "close-to-reference", "levenshtein", {}, 0.4, evan)
                cites = _evaluator(support, "cites-passages", "citation", {}, 1.0, evan)
                gate = _gate(refund, evan, [{"dataset": golden, "input_map": {"policy": "context"}}], [close, cites],
                             min_pass_rate=0.5, max_regression=0.1)
                for version in refund.versions.all():
                    _run_gate(gate, version, evan)
            if classifier is not None and safety:
                gate = _gate(classifier, evan, [{"dataset": adversarial, "input_map": {"ticket": "input"}}], safety,
                             min_pass_rate=0.9, max_regression=0.0)

                production = production_version(classifier)
                if production is not None:
                    _run_gate(gate, production, evan)
            if not Feedback.objects.exists():
                _feedback(support, evan)


def _feedback(team, actor) -> None:
    samples = [
        ("demo-req-001", "up", "", "", CLASSIFIER_PROMPT, 2), ("demo-req-002", "up", "", "", CLASSIFIER_PROMPT, 2),
        ("demo-req-003", "down", "Too long", "", "support/triage-summary", 2),
        ("demo-req-004", "down", "Wrong queue", "Escalate to billing.", CLASSIFIER_PROMPT, 2),
        ("demo-req-005", "up", "", "", "support/triage-summary", 2),
        ("demo-req-006", "down", "", "Refunds take 5 business days.", REFUND_PROMPT, 1),
    ]
    for request_id, thumbs, comment, correction, prompt, version in samples:
        feedback_record(actor=actor, team=team, request_id=request_id, thumbs=thumbs, comment=comment,
                        correction=correction, prompt_name=prompt, prompt_version=version)
