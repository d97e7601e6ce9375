"""The red-team release gate: production of a prompt serving an elevated or high-risk use case needs a finished
campaign on the exact version whose ASR upper bound is below the team's threshold in every category, and a
judge (if used) at the stated kappa; other labels and other prompts pass."""

from __future__ import annotations

import pytest

from apps.evals.models import EvaluatorDefinition, JudgeLabel
from apps.prompts.registry import GateContext, gate_check
from apps.redteam.library_glue import wilson
from apps.redteam.models import Campaign, CampaignStatus, RedTeamPolicy
from apps.reviews.models import UseCase, UseCasePrompt


def _summary(categories: dict[str, tuple[int, int]]) -> dict:
    def rate(k, n):
        w = wilson(k, n)
        return {"successes": k, "total": n, "asr": w["value"], "low": w["low"], "high": w["high"]}

    total = [sum(v[0] for v in categories.values()), sum(v[1] for v in categories.values())]
    return {"overall": rate(*total), "strategies": [],
            "categories": [{"name": name, "owasp": "LLM01", "owasp_label": "LLM01", **rate(k, n)}
                           for name, (k, n) in categories.items()]}


@pytest.fixture
def high_risk(team, version):
    use_case = UseCase.objects.create(team=team, title="Refund agent", purpose="refunds", tier="high")
    UseCasePrompt.objects.create(use_case=use_case, prompt=version.prompt)
    return use_case


def _context(version, label="production"):
    return GateContext(request=None, prompt=version.prompt, to_version=version, from_version=None, label=label,
                       policy=None)


def _campaign(team, version, categories, **extra):
    return Campaign.objects.create(team=team, name="c", prompt=version.prompt, prompt_version=version,
                                   version_hash=version.content_hash, target_label="t", model="rt-chat",
                                   strategies=["plain"], status=CampaignStatus.FINISHED, summary=_summary(categories),
                                   **extra)


def check(version, label="production"):
    return gate_check("redteam").fn(_context(version, label))


def test_a_high_risk_prompt_without_a_campaign_on_the_exact_version_is_blocked(high_risk, version):
    outcome = check(version)
    assert outcome.status == "failed" and "v1" in outcome.summary


def test_a_campaign_whose_upper_bound_is_over_the_threshold_blocks_and_one_below_passes(high_risk, team, version):
    _campaign(team, version, {"prompt-injection": (2, 30)})  # ASR 7 %, upper bound ≈ 21 %: over the default 20 %
    assert check(version).status == "failed"
    RedTeamPolicy.objects.create(team=team, default_max_asr=0.25)
    assert check(version).status == "passed"
    RedTeamPolicy.objects.filter(team=team).update(max_asr={"prompt-injection": 0.05})
    assert "prompt-injection" in check(version).summary


def test_a_campaign_on_other_content_does_not_count(high_risk, team, version):
    campaign = _campaign(team, version, {"prompt-injection": (0, 200)})
    Campaign.objects.filter(pk=campaign.pk).update(version_hash="another-content")
    assert check(version).status == "failed"


def test_the_gate_refuses_a_judge_below_the_stated_kappa(high_risk, team, version):
    judge = EvaluatorDefinition.objects.create(team=team, name="rt-judge", kind="llm_judge", params={},
                                               threshold=0.5)
    JudgeLabel.objects.bulk_create([JudgeLabel(evaluator=judge, output=f"o{i}", human_passed=i % 2 == 0,
                                               judge_passed=True) for i in range(6)])
    _campaign(team, version, {"prompt-injection": (0, 200)}, judge=judge)
    outcome = check(version)
    assert outcome.status == "failed" and "κ" in outcome.summary
    JudgeLabel.objects.filter(evaluator=judge).update(judge_passed=None)
    JudgeLabel.objects.bulk_create([JudgeLabel(evaluator=judge, output=f"p{i}", human_passed=i % 2 == 0,
                                               judge_passed=i % 2 == 0) for i in range(10)])
    assert check(version).status == "passed"


def test_other_labels_and_low_risk_prompts_need_no_campaign(team, version):
    assert check(version).status == "passed"  # no use case linked
    use_case = UseCase.objects.create(team=team, title="FAQ", purpose="faq", tier="high")
    UseCasePrompt.objects.create(use_case=use_case, prompt=version.prompt)
    assert check(version, label="staging").status == "passed"
