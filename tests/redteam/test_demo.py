"""The demo red team: Support AI's probes and one finished campaign on the offline model; idempotent."""

from apps.prompts.models import Prompt
from apps.redteam.demo import NAME, PROMPT, seed_demo_redteam
from apps.redteam.models import Attack, Campaign, CampaignStatus, TeamProbe
from apps.redteam.targets import ATTACKER_PROMPT


def test_the_demo_seeds_probes_and_a_finished_campaign_and_is_idempotent(team, engineer):
    from apps.llm.services import catalog_seed_local
    from apps.prompts.content import Draft
    from apps.prompts.services import prompt_create

    catalog_seed_local()
    prompt_create(team=team, name=PROMPT, actor=engineer, commit_message="first", draft=Draft(
        kind="text", config={"model": "local-extractive"},
        template="Answer from the policy.\nContext:\n{{ policy }}\n\nQuestion: {{ question }}"))
    people, teams = {"evan": engineer}, {"support-ai": team}

    assert seed_demo_redteam(people, teams) == 1
    campaign = Campaign.objects.get(name=NAME)
    assert campaign.status == CampaignStatus.FINISHED
    assert not Attack.objects.filter(campaign=campaign).exclude(error="").exists()
    assert TeamProbe.objects.filter(team=team).exists()
    assert Prompt.objects.filter(name=ATTACKER_PROMPT, team=team).exists()  # the attacker, offline: planned turns
    assert seed_demo_redteam(people, teams) == 0
