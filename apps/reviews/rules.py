"""Risk tiering as code: one deterministic rule set over the intake answers.

Every rule is evaluated and recorded in the trace (matched or not); the highest matched tier wins; the
required controls are the tier's baseline plus those of every matched rule. No keyword heuristics: each
condition reads answer fields by their stable ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

LOW, ELEVATED, HIGH, PROHIBITED = "low", "elevated", "high", "prohibited"
TIER_ORDER = (LOW, ELEVATED, HIGH, PROHIBITED)
TIER_LABELS = {LOW: "Low", ELEVATED: "Elevated", HIGH: "High", PROHIBITED: "Prohibited"}

# The control library's built-in entries (admins edit names and descriptions, and may add controls).
CONTROL_LIBRARY = {
    "baseline_eval": ("Baseline eval", "An eval run on a representative dataset before production."),
    "pii_redaction": ("PII redaction", "Personal data is redacted from prompts, logs and the RAG corpus."),
    "prompt_injection_red_team": ("Prompt-injection red team", "A red-team exercise against injected instructions."),
    "groundedness_threshold": ("Groundedness threshold", "Answers meet a groundedness score threshold in evals."),
    "disclosure_to_users": ("Disclosure to users", "People are told they interact with AI / content is AI-made."),
    "human_oversight_design": ("Human-oversight design", "Documented review points, stop button, escalation."),
    "incident_runbook": ("Incident runbook", "Who does what when it misbehaves; kill switch tested."),
    "vendor_no_training": ("Vendor no-training terms", "Contract forbids the vendor training on our data."),
    "log_retention": ("Log retention", "Inputs/outputs kept only as long as policy allows, after redaction."),
    "bias_eval": ("Bias and fairness eval", "Outcomes compared across protected groups."),
    "dpia": ("Data-protection impact assessment", "A DPIA signed by the privacy seat."),
}

TIER_CONTROLS = {
    LOW: ("baseline_eval",),
    ELEVATED: ("baseline_eval", "incident_runbook", "log_retention"),
    HIGH: ("baseline_eval", "incident_runbook", "log_retention", "human_oversight_design"),
    PROHIBITED: (),
}

SENSITIVE = ("pii", "special_category", "confidential")
DATA_CLASS_RANK = {"public": 0, "internal": 1, "confidential": 2, "pii": 3, "special_category": 4}


class Answers(dict):
    def has(self, field: str, *values) -> bool:
        value = self.get(field)
        if isinstance(value, list):
            return bool(set(value) & set(values))
        return value in values

    def yes(self, field: str) -> bool:
        return self.get(field) is True

    def data_classes(self) -> set[str]:
        classes = set(self.get("prompt_data_classes") or [])
        if self.yes("uses_rag"):
            classes |= set(self.get("rag_data_classes") or [])
        return classes

    def external(self) -> bool:
        return self.has("exposure", "customers", "public", "minors_vulnerable")

    def art5(self) -> list[str]:
        return [p for p in (self.get("prohibited_practices") or []) if p != "none"]


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    tier: str
    source: str
    condition: Callable[[Answers], bool]
    controls: tuple[str, ...] = ()


RULES: tuple[Rule, ...] = (
    Rule("P1", "Any Article 5 prohibited practice", PROHIBITED, "EU AI Act Art. 5(1)",
         lambda a: bool(a.art5())),
    Rule("H1", "Annex III area with profiling or influence on a decision about a person", HIGH,
         "EU AI Act Art. 6(2)-(3), Annex III",
         lambda a: a.get("annex_iii_area") not in (None, "none") and (a.yes("profiling") or a.yes("decision_influence")),
         ("human_oversight_design", "bias_eval", "dpia")),
    Rule("H2", "Acts through tools without a person reviewing every output", HIGH,
         "OWASP LLM06:2025 Excessive Agency; EU AI Act Art. 14",
         lambda a: a.yes("tool_actions") and a.get("human_oversight") != "every_output",
         ("human_oversight_design", "prompt_injection_red_team")),
    Rule("H3", "Special-category data sent to a third-party model", HIGH, "GDPR Art. 9, Art. 28",
         lambda a: "special_category" in a.data_classes() and a.yes("third_party_model"),
         ("vendor_no_training", "pii_redaction", "dpia")),
    Rule("H4", "Decision influence over minors or vulnerable groups", HIGH, "EU AI Act Art. 9(9)",
         lambda a: a.has("exposure", "minors_vulnerable") and (a.yes("decision_influence") or a.yes("profiling")),
         ("human_oversight_design", "bias_eval")),
    Rule("H5", "Irreversible harm to many people", HIGH, "NIST AI RMF MAP 5.1",
         lambda a: a.get("harm_reversibility") == "irreversible" and a.get("harm_scale") in ("many", "society"),
         ("human_oversight_design", "incident_runbook")),
    Rule("E1", "Chats with customers or the public", ELEVATED, "EU AI Act Art. 50(1)",
         lambda a: a.yes("chats_with_people") and a.external(),
         ("disclosure_to_users", "prompt_injection_red_team")),
    Rule("E2", "Generates synthetic media", ELEVATED, "EU AI Act Art. 50(2)",
         lambda a: a.yes("generates_media"), ("disclosure_to_users",)),
    Rule("E3", "Personal or confidential data in prompts or the RAG corpus", ELEVATED, "GDPR Art. 5(1)(c), Art. 32",
         lambda a: bool(a.data_classes() & set(SENSITIVE)), ("pii_redaction", "log_retention")),
    Rule("E4", "Gives health, legal or financial advice", ELEVATED, "OWASP LLM09:2025 Misinformation",
         lambda a: bool([v for v in (a.get("regulated_advice") or []) if v != "none"]),
         ("groundedness_threshold", "disclosure_to_users")),
    Rule("E5", "Reads untrusted content and can act through tools", ELEVATED, "OWASP LLM01:2025 Prompt Injection",
         lambda a: a.yes("untrusted_content") and a.yes("tool_actions"), ("prompt_injection_red_team",)),
    Rule("E6", "Third-party model may keep or train on our data", ELEVATED, "GDPR Art. 28(3)",
         lambda a: a.yes("third_party_model") and (a.yes("vendor_may_train")
                                                   or a.get("vendor_retention") == "longer_or_unknown"),
         ("vendor_no_training",)),
    Rule("E7", "Output published externally", ELEVATED, "EU AI Act Art. 50(4)",
         lambda a: a.yes("external_publication"), ("disclosure_to_users", "groundedness_threshold")),
    Rule("E8", "Profiling of people in the EU", ELEVATED, "GDPR Art. 22",
         lambda a: a.yes("profiling") and a.has("geographies", "eu"), ("dpia",)),
    Rule("L1", "Every use case", LOW, "Portal policy: baseline", lambda a: True, ("baseline_eval",)),
)


def rule_by_id(rule_id: str) -> Rule | None:
    return next((r for r in RULES if r.id == rule_id), None)


def tier_rank(tier: str) -> int:
    return TIER_ORDER.index(tier)


def max_tier(*tiers: str) -> str:
    return max(tiers, key=tier_rank)


@dataclass(frozen=True)
class Assessment:
    tier: str
    trace: list[dict]
    controls: list[str]


def controls_for(tier: str, trace: list[dict]) -> list[str]:
    keys = list(TIER_CONTROLS[tier])
    if tier != PROHIBITED:
        for step in trace:
            if step["matched"]:
                keys.extend(step["controls"])
    return list(dict.fromkeys(keys))


def assess(answers: dict) -> Assessment:
    """Evaluate every rule; the highest matched tier wins. A rule that raises counts as matched (fail safe)."""
    a = Answers(answers or {})
    trace, tier = [], LOW
    for rule in RULES:
        try:
            matched, error = bool(rule.condition(a)), ""
        except Exception as exc:  # noqa: BLE001 - a broken rule must raise the tier, not hide
            matched, error = True, f"{type(exc).__name__}: {exc}"
        step = {"id": rule.id, "description": rule.description, "tier": rule.tier, "source": rule.source,
                "matched": matched, "controls": list(rule.controls)}
        if error:
            step["error"] = error
        trace.append(step)
        if matched:
            tier = max_tier(tier, rule.tier)
    return Assessment(tier=tier, trace=trace, controls=controls_for(tier, trace))
