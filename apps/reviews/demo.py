"""Demo use cases for `make run`: one in every resting state and tier, linked to the demo prompts. Active ones
have their required controls waived by the council (with a reason); one approved use case still waits on them.

    seed_demo_reviews(people, teams)   # the dicts returned by portal.demo.seed_demo_accounts()

Idempotent: does nothing when the demo use cases exist. Needs the demo prompts for links (skips links otherwise).
"""

from __future__ import annotations

from datetime import date, timedelta

from django.db import transaction
from django.utils import timezone

from apps.core.request_context import acting_as
from apps.costs.selectors import active_monthly_budget_amounts
from apps.costs.services import budget_create
from apps.prompts.models import Prompt
from apps.reviews import linking, services
from apps.reviews.models import UseCase

BASE = {
    "exposure": ["internal"], "geographies": ["eu", "us"], "ai_act_role": "deployer", "models": "local-extractive",
    "third_party_model": False, "chats_with_people": False, "generates_media": False, "annex_iii_area": "none",
    "decision_influence": False, "profiling": False, "prohibited_practices": ["none"],
    "human_oversight": "every_output", "tool_actions": False, "untrusted_content": False,
    "external_publication": False, "prompt_data_classes": ["internal"], "uses_rag": False,
    "regulated_advice": ["none"], "harm_scale": "individual", "harm_reversibility": "easy",
    "planned_evals": "Baseline eval on 50 labelled tickets; groundedness ≥ 0.9.", "monthly_budget_usd": 500,
}


def _answers(**changes) -> dict:
    return {**BASE, **changes}


def _prompt(name):
    return Prompt.objects.filter(name=name).first()


def _create(people, teams, title, answers, *, team="support-ai", author="evan", prompts=(), submit=True):
    user = people[author]
    with acting_as(user):
        use_case = services.use_case_create(team=teams[team], actor=user, title=title, answers=answers,
                                            purpose=f"{title}: demo use case.", lifecycle_stage="pilot",
                                            accountable_executive="VP Customer Operations")
        for name in prompts:
            prompt = _prompt(name)
            if prompt is not None:
                linking.prompt_link(use_case=use_case, actor=user, prompt=prompt)
        if submit:
            use_case = services.use_case_submit(use_case=use_case, actor=user)
    return use_case


def _vote(people, use_case, username, decision="approve", rationale="Controls are adequate for the tier."):
    user = people[username]
    with acting_as(user):
        services.vote_cast(use_case=use_case, user=user, decision=decision, rationale=rationale)
    use_case.refresh_from_db()
    return use_case


def _waive_controls(people, use_case, username, reason="Covered by the platform's standard controls (demo)."):
    """The council waives the required controls, with a reason, so the approval can make the use case active."""
    user = people[username]
    use_case.refresh_from_db()
    with acting_as(user):
        for key in use_case.required_controls or []:
            services.control_waive(use_case=use_case, user=user, control=key, reason=reason)
    use_case.refresh_from_db()
    return use_case


def _move(people, use_case, username, name, note=""):
    user = people[username]
    with acting_as(user):
        services.use_case_transition(use_case=use_case, actor=user, name=name, note=note)
    use_case.refresh_from_db()
    return use_case


@transaction.atomic
def seed_demo_reviews(people: dict, teams: dict) -> int:
    if UseCase.objects.filter(title="Ticket triage summaries").exists() or "support-ai" not in teams:
        return 0
    # Active, low risk, linked to the triage prompt.
    low = _create(people, teams, "Ticket triage summaries", _answers(), prompts=["support/triage-summary"])
    _waive_controls(people, low, "paula", "Baseline eval runs in the prompt's release gate.")
    _vote(people, low, "paula")
    # Approved with an automatic condition that checks itself (monthly budget ≤ $2,000).
    drafting = _create(people, teams, "Reply drafting for agents", _answers(prompt_data_classes=["internal", "pii"]),
                       prompts=["support/reply-draft"])
    _vote(people, drafting, "sam")
    _vote(people, drafting, "priya", "approve_with_conditions", "Approve once a monthly budget caps spend.")
    olivia = people["olivia"]
    with acting_as(olivia):
        if not active_monthly_budget_amounts(team_id=teams["support-ai"].pk):
            budget_create(actor=olivia, name="Support AI monthly", team=teams["support-ai"], amount="1500")
    # The cap is $2,000, or above the costs demo's budget when that one is larger: the demo shows a met check.
    existing = max(active_monthly_budget_amounts(team_id=teams["support-ai"].pk), default=0)
    cap = max(2000, int(existing // 500 + 1) * 500 if existing > 2000 else 2000)
    with acting_as(people["priya"]):
        services.condition_add(use_case=drafting, actor=people["priya"], title=f"Monthly budget set at most ${cap:,}",
                               owner=olivia, due_date=date.today() + timedelta(days=14), kind="automatic",
                               predicate="budget_cap", params={"max_usd": cap}, control="incident_runbook",
                               how_met="A team budget in Costs, checked hourly")
        services.condition_add(use_case=drafting, actor=people["priya"], title="PII redaction design reviewed",
                               owner=people["evan"], due_date=date.today() + timedelta(days=30),
                               how_met="Upload the redaction design doc", control="pii_redaction")
    _move(people, drafting, "priya", "set_conditions")
    # High risk in review, awaiting votes (security has voted).
    refunds = _create(people, teams, "Refund eligibility assistant",
                      _answers(exposure=["customers"], annex_iii_area="essential_services", decision_influence=True,
                               decision_description="Agents decide refunds with its recommendation",
                               chats_with_people=True, prompt_data_classes=["pii"], regulated_advice=["financial"]),
                      prompts=["support/refund-policy-qa"])
    _vote(people, refunds, "sam", rationale="Security controls fine; legal and privacy to weigh in.")
    # Prohibited: rejected automatically, awaiting legal confirmation.
    _create(people, teams, "Agent emotion scoring on calls",
            _answers(prohibited_practices=["emotion_recognition_work_education"], profiling=True))
    # Expiring soon: active, then moved to review due by the expiry sweep.
    expiring = _create(people, teams, "Search query rewriting", _answers(), team="search", author="erin",
                       prompts=["search/query-rewrite"])
    _waive_controls(people, expiring, "lee")
    _vote(people, expiring, "lee")
    UseCase.objects.filter(pk=expiring.pk).update(expires_at=timezone.now() + timedelta(days=21))
    # Expired.
    expired = _create(people, teams, "Snippet summaries", _answers(), team="search", author="erin",
                      prompts=["search/snippet-summary"])
    _waive_controls(people, expired, "paula")
    _vote(people, expired, "paula")
    UseCase.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    services.expiry_sweep()
    # Needs info, suspended, withdrawn, retired, draft, approved with conditions (none set yet).
    escalation = _create(people, teams, "Escalation classifier", _answers(prompt_data_classes=["pii"]),
                         prompts=["support/escalation-classifier"])
    _move(people, escalation, "priya", "request_info", "Which PII fields reach the model, and are they redacted?")
    suspended = _create(people, teams, "Article title generator", _answers(), team="search", author="erin",
                        prompts=["search/title-generator"])
    _waive_controls(people, suspended, "sam")
    _vote(people, suspended, "sam")
    _move(people, suspended, "sam", "suspend", "Prompt-injection finding in the red team; fix pending.")
    withdrawn = _create(people, teams, "Voice bot pilot", _answers(chats_with_people=True, exposure=["customers"]))
    _move(people, withdrawn, "evan", "withdraw")
    retired = _create(people, teams, "Legacy FAQ bot", _answers())
    _waive_controls(people, retired, "paula")
    _vote(people, retired, "paula")
    _move(people, retired, "olivia", "retire")
    _create(people, teams, "CSAT weekly digest", _answers(), submit=False, prompts=["support/csat-summary"])
    awc = _create(people, teams, "Knowledge-base answers with citations",
                  _answers(uses_rag=True, rag_data_classes=["confidential"]), team="search", author="erin",
                  prompts=["search/answer-with-citations"])
    _vote(people, awc, "sam")
    _vote(people, awc, "priya", "approve_with_conditions", "Needs a groundedness threshold on the eval set.")
    # Approved, waiting on its required controls: the page lists what still blocks activation.
    waiting = _create(people, teams, "Agent knowledge snippets", _answers(prompt_data_classes=["internal", "pii"]))
    _vote(people, waiting, "sam")
    _vote(people, waiting, "priya")
    return UseCase.objects.count()
