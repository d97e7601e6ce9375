"""What a campaign attacks, as messages: a prompt version rendered with its variables (the attack in the
variable the campaign names, or as the last user message), or a gateway key's system prompt and alias (sent
through the front door: front_door.py). The
system canary is planted in the system message; an indirect-injection attack's document (with the document
canary) is put where retrieved context goes: the prompt's `context` variable when it has one, else a "Retrieved
documents" system message. Against a collection, what goes there is what the collection's retrieval returned
with the document planted in an overlay (planting.py, ADR 0120); without one, the document itself (ADR 0113)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from apps.costs.models import Source
from apps.costs.services import UsageContext
from apps.evals.limiter import slot_ttl
from apps.evals.targets import PreparedPrompt, TargetError, render_prepared
from apps.llm.calls import resolve_model
from apps.llm.errors import LlmError
from apps.llm.models import ModelKind, ProviderKind
from apps.prompts.content import version_parts
from apps.prompts.models import PromptVersion
from apps.prompts.rendering import include_graph, version_where
from apps.prompts.selectors import production_version
from apps.redteam.library_glue import attacker_instructions, plant_document, plant_system
from apps.redteam.planting import RagTarget

ATTACKER_PROMPT = "redteam/attacker"  # the catalog prompt that writes multi-turn attacks (variables: goal, turn, total)

CONTEXT_VARIABLES = ("context", "documents", "retrieved")


@dataclass(frozen=True)
class AttackRow:
    """What the runner needs of one claimed attack."""

    id: int
    token: str
    key: str
    category: str
    owasp: str
    text: str
    document: str
    turns: tuple[str, ...]
    marker: str
    attempts: int


@dataclass
class PreparedTarget:
    campaign_id: int
    team_id: int
    user_id: int | None
    model: str
    provider: str
    provider_ttl: float
    canaries: dict
    variables: dict = field(default_factory=dict)
    attack_variable: str = ""
    prompt: PreparedPrompt | None = None
    system_prompt: str = ""
    feature: str = ""
    use_case_id: int | None = None
    gateway_key_id: int | None = None
    prompt_name: str = ""
    prompt_version: int | None = None
    options: dict = field(default_factory=dict)
    attacker: Attacker | None = None  # multi_turn: the model that writes each next turn (None: planned turns)
    rag: RagTarget | None = None  # indirect injection against a collection (planting.py, ADR 0120)

    def context(self) -> UsageContext:
        """The attribution of the campaign's own calls through the call path (a gateway key's target is called
        through the front door, which records those: ADR 0119)."""
        return UsageContext(source=Source.EVAL, team_id=self.team_id, user_id=self.user_id, feature=self.feature,
                            use_case_id=self.use_case_id, prompt_name=self.prompt_name,
                            prompt_version=self.prompt_version)

    def document_block(self, attack: AttackRow) -> str:
        if not attack.document:
            return ""
        canary = self.canaries.get("document", "")
        return f"[1] {plant_document(attack.document, canary) if canary else attack.document}"

    def messages(self, attack: AttackRow, context: str | None = None) -> list[dict]:
        """The attack's messages. `context`: the retrieved passages when retrieval is in the loop (ADR 0120;
        empty when nothing was retrieved), else the attack's own document is the context (ADR 0113)."""
        documents = self.document_block(attack) if context is None else context
        if self.prompt is not None:
            variables = dict(self.variables)
            if self.attack_variable:
                variables[self.attack_variable] = attack.text
            context_variable = next((v for v in CONTEXT_VARIABLES if v in self.prompt.version.variables), "")
            if context_variable and (documents or context is not None):
                variables[context_variable] = documents
                documents = ""
            messages = render_prepared(self.prompt, variables)
            if not self.attack_variable:
                messages.append({"role": "user", "content": attack.text})
        else:
            messages = [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": attack.text}]
        messages = plant_system_canary(messages, self.canaries.get("system", ""))
        if documents:
            messages.insert(1, {"role": "system", "content": f"Retrieved documents:\n{documents}"})
        return messages


@dataclass(frozen=True)
class Attacker:
    """The attacker of live multi-turn attacks: a real model and its instructions, from the catalog prompt
    `redteam/attacker` (production label, else its latest version) or the library's built-in instructions."""

    model: str
    provider: str
    source: str  # what the campaign page says: "catalog prompt redteam/attacker v2" | "built-in instructions"
    prompt: PreparedPrompt | None = None

    def messages(self, goal: str, turn: int, total: int, history: list[tuple[str, str]]) -> list[dict]:
        """What the attacker is asked for user turn `turn` of `total`, given the conversation so far."""
        if self.prompt is not None:
            messages = render_prepared(self.prompt, {"goal": goal, "turn": turn, "total": total})
        else:
            messages = [{"role": "system", "content": attacker_instructions(goal, turn, total)}]
        said = "\n\n".join(f"{'User' if role == 'user' else 'Target'}: {text}" for role, text in history)
        messages.append({"role": "user", "content": f"The conversation so far:\n{said or '(nothing yet)'}\n\n"
                                                    f"Write user turn {turn} of {total}, and nothing else."})
        return messages


def attacker_for(model_name: str) -> tuple[Attacker | None, str]:
    """The attacker a campaign on `model_name` uses for multi_turn, and a sentence saying which (or why none):
    the catalog prompt's model (else the campaign's), when it is a real one; an offline `local` model cannot
    play the attacker, so the library's planned turns are replayed instead."""
    version = None
    latest = PromptVersion.objects.filter(prompt__name=ATTACKER_PROMPT).select_related("prompt").order_by("-number")
    if latest.exists():
        version = production_version(name=ATTACKER_PROMPT) or latest.first()
    name = str(((version.config or {}).get("model") if version is not None else "") or model_name)
    try:
        model = resolve_model(name, ModelKind.CHAT)
    except LlmError:
        return None, f"Planned turns: the attacker model {name} is not available in the catalog."
    if model.provider.kind == ProviderKind.LOCAL:
        return None, (f"Planned turns: {name} is an offline model, so the library's planned escalation is replayed "
                      "(no attacker model writes the turns).")
    if version is not None:
        source = f"catalog prompt {ATTACKER_PROMPT} v{version.number}"
        attacker = Attacker(model=name, provider=model.provider.name, source=source, prompt=prepared_prompt(version))
    else:
        source = f"built-in instructions (no {ATTACKER_PROMPT} prompt in the catalog)"
        attacker = Attacker(model=name, provider=model.provider.name, source=source)
    return attacker, f"Live: {name} writes each next turn from the target's replies ({source})."


def plant_system_canary(messages: list[dict], canary: str) -> list[dict]:
    if not canary:
        return messages
    if messages and messages[0].get("role") == "system":
        return [{**messages[0], "content": plant_system(str(messages[0]["content"]), canary)}, *messages[1:]]
    return [{"role": "system", "content": plant_system("", canary)}, *messages]


def _provider(model_name: str) -> tuple[str, float]:
    model = resolve_model(model_name, ModelKind.CHAT)
    return model.provider.name, slot_ttl(model.provider)


def prepared_prompt(version) -> PreparedPrompt:
    where = version_where(version)
    return PreparedPrompt(version, include_graph(version),
                          version_parts(version.prompt.kind, version.template, version.messages, where), where)


def prepare(campaign) -> PreparedTarget:
    """Once per worker task: the version compiled, the model resolved. Raises TargetError when it cannot run."""
    provider, ttl = _provider(campaign.model)
    base = {"campaign_id": campaign.pk, "team_id": campaign.team_id, "user_id": campaign.created_by_id,
            "model": campaign.model, "provider": provider, "provider_ttl": ttl, "canaries": dict(campaign.canaries),
            "options": {"max_tokens": settings.REDTEAM_MAX_OUTPUT_TOKENS}}
    if "multi_turn" in (campaign.strategies or []):
        base["attacker"] = attacker_for(campaign.model)[0]
    if campaign.prompt_version_id is not None:
        version = campaign.prompt_version
        prepared = prepared_prompt(version)
        return PreparedTarget(**base, variables=dict(campaign.variables or {}),
                              attack_variable=campaign.attack_variable, prompt=prepared,
                              feature=f"redteam-campaign-{campaign.pk}", prompt_name=version.prompt.name,
                              prompt_version=version.number)
    key = campaign.gateway_key
    if key is None:
        raise TargetError("The campaign's target is gone (its prompt version or gateway key was deleted).")
    return PreparedTarget(**base, system_prompt=campaign.system_prompt, feature=f"redteam-campaign-{campaign.pk}",
                          gateway_key_id=key.pk)
