"""The one place campaigns meet the probe library (probes.py, strategies.py, canaries.py, library/): everything
else in the app calls these functions, never those modules, so their shapes (Probe, Attack, canary evidence) are
turned into the campaign's own (ProbeSpec, AttackSpec, dicts) here only. Tests use their own fixture library
(tests/redteam/conftest.py patches this module).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from random import Random

from apps.evals.stats import mcnemar_exact, wilson_interval
from apps.redteam import canaries as _canaries
from apps.redteam import probes as _probes
from apps.redteam import strategies as _strategies
from apps.redteam.library import available_versions


@dataclass(frozen=True)
class ProbeSpec:
    id: str
    category: str
    text: str
    owasp: str = ""
    harm: str = ""
    marker: str = ""  # the injection-success marker the probe asks the model to say
    source: object = field(default=None, compare=False, repr=False)  # the library's own Probe, when it is one


@dataclass(frozen=True)
class AttackSpec:
    probe_id: str
    strategy: str
    text: str
    category: str
    owasp: str = ""
    harm: str = ""
    marker: str = ""
    document: str = ""  # indirect injection: text planted in a retrieved document
    turns: list[str] = field(default_factory=list)  # multi-turn: the user turns after `text`

    @property
    def key(self) -> str:
        return f"{self.probe_id}:{self.strategy}"


def _marker_of(probe) -> str:
    """The library's `success: {kind: marker, markers: [...]}` (its first marker), or a plain `marker`."""
    success = probe.get("success") if isinstance(probe, dict) else getattr(probe, "success", None)
    kind = (success.get("kind") if isinstance(success, dict) else getattr(success, "kind", "")) if success else ""
    markers = (success.get("markers") if isinstance(success, dict) else getattr(success, "markers", ())) \
        if success else ()
    if kind == "marker" and markers:
        return str(markers[0])
    return str((probe.get("marker") if isinstance(probe, dict) else getattr(probe, "marker", "")) or "")


def _spec(probe) -> ProbeSpec:
    if isinstance(probe, ProbeSpec):
        return probe
    get = probe.get if isinstance(probe, dict) else lambda name, default="": getattr(probe, name, default)
    return ProbeSpec(id=str(get("id", "")), category=str(get("category", "") or ""), text=str(get("text", "")),
                     owasp=str(get("owasp", "") or ""), harm=str(get("harm", "") or ""), marker=_marker_of(probe),
                     source=None if isinstance(probe, dict) else probe)


def _library_probe(spec: ProbeSpec):
    """The library's Probe for a spec (a team probe is made into one: marker or compliance)."""
    if spec.source is not None:
        return spec.source
    success = _probes.Success("marker", (spec.marker,)) if spec.marker else _probes.Success("compliance")
    return _probes.Probe(id=spec.id, text=spec.text, owasp=spec.owasp or "LLM01", category=spec.category,
                         harm=spec.harm, goal="", success=success, severity="medium")


# --- probes -------------------------------------------------------------------------------------------------

def library_versions() -> list[str]:
    return available_versions()


def library_probes(version: str) -> list[ProbeSpec]:
    if not version:
        return []
    return [_spec(p) for p in _probes.load_library(version)]


def parse_probes_jsonl(text: str) -> tuple[list[ProbeSpec], list[tuple[int, str]]]:
    """Probes of a JSONL text and the lines that are not probes: [(line number, why)]."""
    probes, errors = _probes.parse_jsonl(text)
    return [_spec(p) for p in probes], [_line_error(e) for e in errors]


def _line_error(error) -> tuple[int, str]:
    if isinstance(error, tuple | list):
        return int(error[0]), str(error[1])
    return int(getattr(error, "line", 0)), str(getattr(error, "message", error))


# --- strategies ---------------------------------------------------------------------------------------------

def strategy_names() -> list[str]:
    return list(_strategies.STRATEGIES)


def expand_attacks(probes: list[ProbeSpec], names: list[str], seed: int,
                   canaries: dict[str, str] | None = None) -> list[AttackSpec]:
    """Each probe through each strategy: one AttackSpec per generated attack, with its parent probe. `canaries`
    ({"system": ..., "document": ...}) fill the probes' canary placeholders before any encoding."""
    by_id = {p.id: p for p in probes}
    fill = {"canary": (canaries or {}).get("document"), "system_canary": (canaries or {}).get("system")}
    out = []
    for attack in _strategies.expand([_library_probe(p) for p in probes], names, seed,
                                     canaries={k: v for k, v in fill.items() if v} or None):
        probe = by_id.get(getattr(attack, "probe_id", ""))
        turns = list(getattr(attack, "turns", None) or [])  # the library's turns are all of them, text the last
        out.append(AttackSpec(
            probe_id=attack.probe_id, strategy=attack.strategy, text=turns[0] if turns else attack.text,
            category=probe.category if probe else "", owasp=probe.owasp if probe else "",
            harm=probe.harm if probe else "", marker=probe.marker if probe else "",
            document=getattr(attack, "document", "") or "", turns=turns[1:]))
    return out


def attacker_instructions(goal: str, turn: int, total: int) -> str:
    """The library's built-in attacker instructions (ATTACKER_INSTRUCTIONS) for one turn: the default when the
    catalog has no `redteam/attacker` prompt."""
    return _strategies.ATTACKER_INSTRUCTIONS.format(goal=goal, turn=turn, total=total)


def attacker_template() -> str:
    """The built-in attacker instructions as a catalog prompt template (variables goal, turn, total)."""
    text = _strategies.ATTACKER_INSTRUCTIONS
    for name in ("goal", "turn", "total"):
        text = text.replace("{" + name + "}", "{{ " + name + " }}")
    return text


# --- statistics ---------------------------------------------------------------------------------------------

def wilson(successes: int, total: int) -> dict:
    """{value, low, high} of the 95 % Wilson interval (None for no attacks)."""
    interval = wilson_interval(successes, total)
    return {"value": interval.value, "low": interval.low, "high": interval.high}


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value on the discordant pairs."""
    return mcnemar_exact(only_a, only_b).p_value


# --- canaries -----------------------------------------------------------------------------------------------

def new_canary(kind: str, seed: str) -> str:
    """A unique string to plant (kind: system | document); deterministic for a seed."""
    return str(_canaries.generate_canary(Random(f"{kind}:{seed}")))


def canary_hits(text: str, canaries: dict[str, str]) -> list[dict]:
    """Each planted canary found in the text: [{"where": kind, "canary": value, "at": index}]."""
    return [{"where": e.label, "canary": e.canary, "at": e.start, "form": e.form}
            for e in _canaries.detect_canaries(text or "", {k: v for k, v in canaries.items() if v})]


def plant_system(system_prompt: str, canary: str) -> str:
    """The system prompt with the canary planted in it."""
    return _canaries.plant_in_system_prompt(system_prompt, canary)


def plant_document(document: str, canary: str) -> str:
    """A retrieved document with the canary planted in it."""
    return _canaries.plant_in_document(document, canary)
