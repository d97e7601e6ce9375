"""Where apps above llm switch the portal's own calls (incidents' "feature off" and "stricter filters"), without llm
knowing them.

    register_call_switch("incident", fn)   # fn(CallScope) -> CallSwitch | None (sync; may query)

`calls.chat` and `calls.chat_stream` (and `acalls.achat` / `achat_stream`, ADR 0122) ask `switch_for(context)`
before each call: every registered switch's answer
for the call's scope (team + feature, use case, prompt, collection of its UsageContext), merged (a refusal wins,
each filter the strictest), kept in the shared cache under one stamp (apps/core/stamped_cache.py: one MGET per
call). `switches_changed()` replaces the stamp after the commit, so every process (web, workers) obeys on its
next call. The gateway's traffic goes through its own front door (apps/gateway/registry.py), not this — except
its prompt references, for which it asks `switch_for_scope(CallScope(prompt_name=…))` once per second per prompt.
The switch that acts marks the call's usage row (`UsageContext.switch_id`: `CallSwitch.switch_id` for a refusal,
`filter_ids` for a filter that acted).

A refused call is recorded as `refused` with the switch's key as error type (as the gateway's guard refusals are)
and raises `CallRefused` (its message is the switch's, for the person who asked). Filters screen the call with the
guardrails app's detectors: PII in the input (redact, block), injection in user/tool messages (flag, block), PII
in the output (flag, redact, block); each action lands on the call's usage event (`guardrail_actions`, kinds and
counts only, never the text) and a block raises `CallBlocked`. With an output filter, a stream is scanned whole
before its first delta is handed out.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

from apps.core.stamped_cache import stamp_replace, stamped_get
from apps.costs.services import UsageContext
from apps.guardrails import detect_pii, redact_findings, scan_injection
from apps.llm.errors import LlmError
from apps.llm.results import ChatRequest, ProviderChat, StreamDelta

STAMP_KEY = "llm:call-switches:stamp"
ENTRY_TIMEOUT = 300
BLOCKED_CODE = "content_policy_violation"  # the gateway's code for a guardrail block: one name for both
# Each filter's values, weakest first (the gateway's GatewayKey.guard_* values): the stricter of two is the later.
FILTERS = {"input_pii": ("allow", "redact", "block"), "injection": ("off", "flag", "block"),
           "output": ("off", "flag", "redact", "block")}
INJECTION_ROLES = ("user", "tool", "function")


@dataclass(frozen=True)
class CallScope:
    """What a portal call is for, as a switch sees it."""

    team_id: int | None = None
    feature: str = ""
    use_case_id: int | None = None
    prompt_name: str = ""
    collection_id: int | None = None

    @classmethod
    def of(cls, context: UsageContext) -> CallScope:
        return cls(team_id=context.team_id, feature=context.feature, use_case_id=context.use_case_id,
                   prompt_name=context.prompt_name, collection_id=context.collection_id)


@dataclass(frozen=True)
class CallSwitch:
    """A switch's answer: refuse the call (`refuse`: the message; `code`: recorded as its error type), and/or
    filters raised above the defaults ("allow"/"off"). `switch_id`: the switch that refuses; `filter_ids`: (filter,
    the switch that raised it) — what marks the call's usage row when it acts (`UsageContext.switch_id`);
    `serves`: (label, version, switch) — the prompt's label serves that version because of the switch (a rollback):
    whoever resolves the label for the call (the gateway's prompt references) marks it with the switch."""

    refuse: str = ""
    code: str = ""
    input_pii: str = "allow"
    injection: str = "off"
    output: str = "off"
    switch_id: int | None = None
    filter_ids: tuple[tuple[str, int], ...] = ()
    serves: tuple[tuple[str, int, int], ...] = ()

    def stricter(self, other: CallSwitch) -> CallSwitch:
        values, ids = {}, {}
        mine, theirs = dict(self.filter_ids), dict(other.filter_ids)
        for name, order in FILTERS.items():
            raised = order.index(getattr(other, name)) > order.index(getattr(self, name))
            values[name] = getattr(other if raised else self, name)
            if (source := (theirs if raised else mine).get(name)) is not None:
                ids[name] = source
        first = self if self.refuse else other
        return CallSwitch(refuse=first.refuse, code=first.code, switch_id=first.switch_id,
                          filter_ids=tuple(sorted(ids.items())), serves=self.serves + other.serves, **values)

    @property
    def filters(self) -> bool:
        return any(getattr(self, name) != FILTERS[name][0] for name in FILTERS)

    def acted(self, actions) -> int | None:
        """The switch whose filter made the first of these guardrail actions (a call's), or None."""
        ids = dict(self.filter_ids)
        for action in actions:
            name = "output" if action["direction"] == "output" else \
                "injection" if action["check"] == "injection" else "input_pii"
            if ids.get(name) is not None:
                return ids[name]
        return None


class CallRefused(LlmError):
    """A switch refuses this call (an incident's "feature off"); the message is the switch's."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message, status_code=423)
        self.code = code

    @property
    def error_type(self) -> str:
        return self.code


class CallBlocked(LlmError):
    """A switch's filter refused the input or the answer; the message names the kinds found, never the text."""

    def __init__(self, message: str):
        super().__init__(message, status_code=400)

    @property
    def error_type(self) -> str:
        return BLOCKED_CODE


Switch = Callable[[CallScope], "CallSwitch | None"]
_switches: dict[str, Switch] = {}


def register_call_switch(key: str, fn: Switch) -> None:
    _switches[key] = fn


def _ask(scope: CallScope) -> CallSwitch | None:
    merged = None
    for key, fn in _switches.items():
        answer = fn(scope)
        if answer is not None:
            answer = dataclasses.replace(answer, code=answer.code or key)
            merged = answer if merged is None else merged.stricter(answer)
    return merged


def switch_for(context: UsageContext) -> CallSwitch | None:
    """The merged answer of the registered switches for this call, or None (nothing registered: no round trip)."""
    return switch_for_scope(CallScope.of(context))


def switch_for_scope(scope: CallScope) -> CallSwitch | None:
    """switch_for() of a scope (the gateway asks it for a prompt reference: `CallScope(prompt_name=…)`)."""
    if not _switches:
        return None
    digest = hashlib.sha1(repr(dataclasses.astuple(scope)).encode(), usedforsecurity=False).hexdigest()
    return stamped_get(STAMP_KEY, f"llm:call-switch:{digest}", lambda: _ask(scope), timeout=ENTRY_TIMEOUT)


def switches_reset() -> None:
    """A new stamp now: every cached answer is asked again (on commit after a change; tests: rows rolled back)."""
    stamp_replace(STAMP_KEY)


def switches_changed() -> None:
    """An answer of a switch may have changed: every process asks again on its next call (after the commit)."""
    transaction.on_commit(switches_reset)


# -- the screen -----------------------------------------------------------------------------------------------
def _phrase(kinds: Counter) -> str:
    return ", ".join(f"{kind} ×{n}" if n > 1 else str(kind) for kind, n in sorted(kinds.items()))


def _action(direction: str, check: str, action: str, kinds: Counter) -> dict:
    return {"direction": direction, "check": check, "action": action, "kinds": dict(sorted(kinds.items()))}


def _texts(message: dict) -> list[str]:
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [part.get("text", "") for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)]
    return []


def _redacted(message: dict) -> dict:
    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": redact_findings(content, detect_pii(content))}
    if isinstance(content, list):
        return {**message, "content": [{**part, "text": redact_findings(part["text"], detect_pii(part["text"]))}
                                       if isinstance(part, dict) and isinstance(part.get("text"), str) else part
                                       for part in content]}
    return message


def screen_input(switch: CallSwitch, messages: list[dict], actions: list[dict]) -> list[dict]:
    """The messages the provider may receive under `switch`'s input filters (appending to `actions`); raises
    CallBlocked."""
    if switch.injection != "off":
        kinds = Counter(str(f.kind) for m in messages if m.get("role") in INJECTION_ROLES
                        for text in _texts(m) for f in scan_injection(text))
        if kinds:
            actions.append(_action("input", "injection", switch.injection, kinds))
            if switch.injection == "block":
                raise CallBlocked(f"An incident's stricter filters block input that reads as a prompt injection "
                                  f"({_phrase(kinds)}).")
    if switch.input_pii == "allow":
        return messages
    kinds = Counter(str(f.type) for m in messages for text in _texts(m) for f in detect_pii(text))
    if not kinds:
        return messages
    actions.append(_action("input", "pii", switch.input_pii, kinds))
    if switch.input_pii == "block":
        raise CallBlocked(f"An incident's stricter filters block personal data or secrets in the input "
                          f"({_phrase(kinds)}).")
    return [_redacted(m) for m in messages]


def screen_output(switch: CallSwitch, text: str, actions: list[dict]) -> tuple[str, bool]:
    """(the answer's text as it may be shown, whether it is blocked), appending to `actions`."""
    if switch.output == "off" or not text:
        return text, False
    findings = detect_pii(text)
    if not findings:
        return text, False
    actions.append(_action("output", "pii", switch.output, Counter(str(f.type) for f in findings)))
    if switch.output == "redact":
        return redact_findings(text, findings), False
    return text, switch.output == "block"


def blocked_output(actions: list[dict]) -> CallBlocked:
    kinds = Counter(actions[-1]["kinds"]) if actions else Counter()
    return CallBlocked(f"An incident's stricter filters block personal data or secrets in the answer "
                       f"({_phrase(kinds)}).")


# -- what both faces of the call path do with an answer (calls.py, acalls.py) ---------------------------------
def screened_request(switch: CallSwitch | None, request: ChatRequest, actions: list[dict]) -> ChatRequest | None:
    """The request as the provider may receive it under the switch's input filters, or None when the switch
    raises no filter (then the response cache may serve); raises CallBlocked."""
    if switch is None or not switch.filters:
        return None
    return dataclasses.replace(request, messages=screen_input(switch, request.messages, actions))


def screened_answer(switch: CallSwitch | None, answer: ProviderChat, actions: list[dict]) -> tuple[ProviderChat, bool]:
    """The answer under the switch's output filter, and whether it is blocked (raised once recorded)."""
    if switch is None:
        return answer, False
    text, blocked = screen_output(switch, answer.text, actions)
    return (dataclasses.replace(answer, text=text) if text != answer.text else answer), blocked


def screened_stream(switch: CallSwitch, pieces: list[StreamDelta], actions: list[dict]
                    ) -> tuple[list[StreamDelta], ProviderChat | None, bool]:
    """A whole stream's pieces under the output filter: (the pieces to hand out — the text in one piece —, the
    provider's final piece, whether it is blocked)."""
    final = next((piece.final for piece in pieces if piece.final is not None), None)
    text = final.text if final is not None else "".join(piece.text for piece in pieces)
    shown, blocked = screen_output(switch, text, actions)
    return [StreamDelta(text=shown), *([StreamDelta(final=dataclasses.replace(final, text=shown))]
                                       if final is not None else [])], final, blocked
