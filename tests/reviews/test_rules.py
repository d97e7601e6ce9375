"""Each rule of the tiering, and its edges: the highest tier wins, every rule is traced, controls accumulate."""

import pytest

from apps.reviews import rules
from tests.reviews.conftest import LOW_ANSWERS, answers


def matched(result):
    return {step["id"] for step in result.trace if step["matched"]}


def test_low_answers_match_only_the_baseline_rule():
    result = rules.assess(LOW_ANSWERS)
    assert result.tier == rules.LOW
    assert matched(result) == {"L1"}
    assert result.controls == ["baseline_eval"]


def test_every_rule_is_in_the_trace_with_its_source():
    result = rules.assess(LOW_ANSWERS)
    assert [s["id"] for s in result.trace] == [r.id for r in rules.RULES]
    assert all(s["source"] and s["description"] for s in result.trace)


@pytest.mark.parametrize("changes, rule_id, tier", [
    ({"prohibited_practices": ["social_scoring"]}, "P1", rules.PROHIBITED),
    ({"prohibited_practices": ["emotion_recognition_work_education"]}, "P1", rules.PROHIBITED),
    ({"annex_iii_area": "employment", "profiling": True}, "H1", rules.HIGH),
    ({"annex_iii_area": "essential_services", "decision_influence": True}, "H1", rules.HIGH),
    ({"tool_actions": True, "human_oversight": "spot_checks"}, "H2", rules.HIGH),
    ({"tool_actions": True, "human_oversight": "none"}, "H2", rules.HIGH),
    ({"prompt_data_classes": ["special_category"], "third_party_model": True}, "H3", rules.HIGH),
    ({"uses_rag": True, "rag_data_classes": ["special_category"], "third_party_model": True}, "H3", rules.HIGH),
    ({"exposure": ["minors_vulnerable"], "decision_influence": True}, "H4", rules.HIGH),
    ({"harm_scale": "many", "harm_reversibility": "irreversible"}, "H5", rules.HIGH),
    ({"exposure": ["customers"], "chats_with_people": True}, "E1", rules.ELEVATED),
    ({"generates_media": True}, "E2", rules.ELEVATED),
    ({"prompt_data_classes": ["pii"]}, "E3", rules.ELEVATED),
    ({"uses_rag": True, "rag_data_classes": ["confidential"]}, "E3", rules.ELEVATED),
    ({"regulated_advice": ["financial"]}, "E4", rules.ELEVATED),
    ({"untrusted_content": True, "tool_actions": True, "human_oversight": "every_output"}, "E5", rules.ELEVATED),
    ({"third_party_model": True, "vendor_may_train": True}, "E6", rules.ELEVATED),
    ({"third_party_model": True, "vendor_retention": "longer_or_unknown"}, "E6", rules.ELEVATED),
    ({"external_publication": True}, "E7", rules.ELEVATED),
    ({"profiling": True, "geographies": ["eu"]}, "E8", rules.ELEVATED),
])
def test_each_rule_matches_and_sets_its_tier(changes, rule_id, tier):
    result = rules.assess(answers(**changes))
    assert rule_id in matched(result)
    assert result.tier == tier
    rule = rules.rule_by_id(rule_id)
    if tier != rules.PROHIBITED:
        assert set(rule.controls) <= set(result.controls)


@pytest.mark.parametrize("changes, rule_id", [
    ({"annex_iii_area": "employment"}, "H1"),  # Annex III area alone: no profiling, no decision
    ({"annex_iii_area": "none", "profiling": True, "decision_influence": True}, "H1"),
    ({"tool_actions": True, "human_oversight": "every_output"}, "H2"),  # a person reviews every action
    ({"prompt_data_classes": ["special_category"], "third_party_model": False}, "H3"),  # self-hosted
    ({"uses_rag": False, "rag_data_classes": ["special_category"], "third_party_model": True}, "H3"),
    ({"harm_scale": "individual", "harm_reversibility": "irreversible"}, "H5"),
    ({"chats_with_people": True, "exposure": ["internal"]}, "E1"),  # internal chat is not Art. 50 exposure
    ({"regulated_advice": ["none"]}, "E4"),
    ({"untrusted_content": True, "tool_actions": False}, "E5"),
    ({"third_party_model": True, "vendor_may_train": False, "vendor_retention": "zero"}, "E6"),
    ({"profiling": True, "geographies": ["us"]}, "E8"),
    ({"prohibited_practices": ["none"]}, "P1"),
    ({"prohibited_practices": []}, "P1"),
])
def test_edges_where_a_rule_does_not_match(changes, rule_id):
    assert rule_id not in matched(rules.assess(answers(**changes)))


def test_the_highest_tier_wins_and_controls_accumulate():
    result = rules.assess(answers(prompt_data_classes=["pii"], tool_actions=True, human_oversight="none",
                                  generates_media=True))
    assert result.tier == rules.HIGH
    assert {"E2", "E3", "H2"} <= matched(result)
    for key in ("human_oversight_design", "incident_runbook", "pii_redaction", "disclosure_to_users",
                "prompt_injection_red_team", "baseline_eval"):
        assert key in result.controls


def test_prohibited_outranks_everything_and_requires_no_controls():
    result = rules.assess(answers(prohibited_practices=["social_scoring"], annex_iii_area="employment",
                                  profiling=True))
    assert result.tier == rules.PROHIBITED
    assert result.controls == []


def test_a_rule_that_raises_counts_as_matched(monkeypatch):
    broken = rules.Rule("X1", "broken", rules.HIGH, "test", lambda a: 1 / 0)
    monkeypatch.setattr(rules, "RULES", (*rules.RULES, broken))
    result = rules.assess(LOW_ANSWERS)
    assert result.tier == rules.HIGH
    assert "ZeroDivisionError" in result.trace[-1]["error"]


def test_assessment_is_deterministic():
    a = answers(prompt_data_classes=["pii"], exposure=["public"], chats_with_people=True)
    assert rules.assess(a) == rules.assess(dict(a))
