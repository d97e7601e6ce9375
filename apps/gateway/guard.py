"""Guardrails in the gateway's path: the policy of a request, its input check, its output scan, its safety events.

The detectors are the guardrails app's (`detect_pii`, `redact`, `scan_injection`): this module only decides what
their findings mean for a gateway request, by policy:

    PII (and secrets) in the input      allow · redact (the upstream gets placeholders) · block (400)
    injection heuristics (user, tool)   off · flag · block (400)
    PII and secrets in the output       off · flag · redact · block (400; mid-stream: an error event)
    what a safety event keeps           none (kinds and counts) · a redacted excerpt

The policy is the key's (GatewayKey.guard_*), made stricter, field by field, by what the providers registered in
apps/gateway/registry.py require (reviews: from the use case's required controls). It is read at most once per
GATEWAY_ADMISSION_TTL_SECONDS per key and process, and again at once when the gateway stamp moves.

Per request a `Screen`:

    screen = await guard.screen_for(info, request.stamp)
    call = screen.chat_input(call)                           # may raise Blocked (recorded as a refusal)
    recorder = screen.recorder(recording.Recorder(info))  # adds the safety events to the call's record
    result = await screen.chat_output(result)                # plain answers
    async for delta in screen.relay(stream): ...             # streams: the deltas to send, text held back

A stream is scanned through a hold-back window of GATEWAY_GUARD_HOLDBACK_CHARS characters: text is sent only
once that many characters have arrived after it, and never cut inside a finding, so a secret or an e-mail address
split across deltas is found before the client sees any of it. Each action (per direction, check and action) is one
safety event: on the call's usage event (`guardrail_actions`), in `portal_gateway_guardrail_actions_total`, and the
checks' time per request in `portal_gateway_guardrail_seconds`. No event, log line or error message holds the
text that was found: kinds and counts only, unless the policy allows a redacted excerpt.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

from django.conf import settings

from apps.core import metrics
from apps.costs.models import CallStatus
from apps.gateway import registry
from apps.gateway.keys import KeyInfo
from apps.gateway.models import EventContent, Injection, InputPii, OutputScan
from apps.gateway.wire import ChatCall, GatewayError
from apps.guardrails import PLACEHOLDERS, PiiFinding, detect_pii, redact_findings, scan_injection
from apps.llm.results import CallRecord, ChatResult, StreamDelta, ToolCallDelta

log = logging.getLogger(__name__)

CODE = "content_policy_violation"
INJECTION_ROLES = ("user", "tool", "function")  # where injected instructions come from; not system/assistant
_EXCERPT = 200
_CONTEXT = 32  # characters of already-sent text the stream scan keeps for cue words ("call", "SSN")
# Each field's values, weakest first: the stricter of two is the later one.
ORDER = {"guard_input_pii": (InputPii.ALLOW, InputPii.REDACT, InputPii.BLOCK),
         "guard_injection": (Injection.OFF, Injection.FLAG, Injection.BLOCK),
         "guard_output": (OutputScan.OFF, OutputScan.FLAG, OutputScan.REDACT, OutputScan.BLOCK),
         "guard_event_content": (EventContent.REDACTED, EventContent.NONE)}


# The policy field each check's action comes from (what marks a call with the switch behind that field).
FIELD_OF = {("input", "pii"): "guard_input_pii", ("input", "injection"): "guard_injection",
            ("output", "pii"): "guard_output"}


@dataclass(frozen=True)
class Policy:
    guard_input_pii: str = InputPii.ALLOW
    guard_injection: str = Injection.OFF
    guard_output: str = OutputScan.OFF
    guard_event_content: str = EventContent.NONE
    # (field, the switch that raised it above the key's own and the other providers'), ADR 0122
    switch_ids: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of_key(cls, info: KeyInfo) -> Policy:
        return cls(**{name: getattr(info, name) for name in ORDER})

    def stricter(self, *required: dict) -> Policy:
        """This policy, with each field raised to what any of `required` asks (unknown names and values ignored);
        a field raised by a switch (`switch_ids` of the provider's answer) remembers it."""
        if not required:
            return self
        values, ids = dataclasses.asdict(self), dict(self.switch_ids)
        for wants in required:
            marks = wants.get("switch_ids") or {}
            for name, value in wants.items():
                order = ORDER.get(name, ())
                if value in order and order.index(value) > order.index(values[name]):
                    values[name] = order[order.index(value)]
                    ids.pop(name, None)
                    if isinstance(marks, dict) and marks.get(name) is not None:
                        ids[name] = marks[name]
        values["switch_ids"] = tuple(sorted(ids.items()))
        return Policy(**values)

    @property
    def checks_input(self) -> bool:
        return self.guard_input_pii != InputPii.ALLOW or self.guard_injection != Injection.OFF

    @property
    def active(self) -> bool:
        return self.checks_input or self.guard_output != OutputScan.OFF


class Blocked(GatewayError):
    """A guardrail refused the request (400, content_policy_violation). The message names the kinds found,
    never the text. `recorded`: the call's usage event already holds it (an output block)."""

    def __init__(self, message: str, *, actions: tuple[dict, ...], recorded: bool = False):
        super().__init__(400, message, code=CODE, param="messages")
        self.actions, self.recorded = actions, recorded


# -- the policy of a key ------------------------------------------------------------------------------------
_policies: dict[int, tuple] = {}  # key id -> (stamp, when, what the providers required)


async def policy_for(info: KeyInfo, stamp: bytes, also: dict | None = None) -> Policy:
    """The key's policy made stricter by the registered providers (cached per key like the admission answer) and by
    `also` (a prompt reference's switches: prompt_ref.PromptRefs.admit)."""
    required = await registry.cached_answer(_policies, info, stamp, registry.guard_policies,
                                            failure="The guardrail policy could not be read; try again.")
    return Policy.of_key(info).stricter(*required, *((also,) if also else ()))


async def screen_for(info: KeyInfo, stamp: bytes, also: dict | None = None) -> Screen:
    return Screen(await policy_for(info, stamp, also))


# -- findings into words and events ---------------------------------------------------------------------------
def _kinds_phrase(kinds: Counter) -> str:
    return ", ".join(f"{kind} ×{n}" if n > 1 else str(kind) for kind, n in sorted(kinds.items()))


def _excerpt(text: str, at: int) -> str:
    """A redacted window of `text` around offset `at` (of the original text): PII never reaches an event."""
    findings = detect_pii(text)
    shift = sum(len(PLACEHOLDERS[f.type]) - (f.end - f.start) for f in findings if f.end <= at)
    start = max(0, at + shift - 60)
    return redact_findings(text, findings)[start:start + _EXCERPT]


class Screen:
    """One request's guardrails: its policy, the safety events so far and the time the checks took."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.actions: list[dict] = []
        self.seconds = {"input": 0.0, "output": 0.0}
        self._base = None
        self._held: CallRecord | None = None
        self._hold = False
        self._plain = False  # a chat call answered in one piece (chat_output settles its record)
        self.switch_id: int | None = None  # the switch behind the field that acted first (marks the record)

    @property
    def scans_output(self) -> bool:
        """The answer may be changed or refused after the call: the response cache stays out of the way."""
        return self.policy.guard_output != OutputScan.OFF

    # -- events -------------------------------------------------------------------------------------------
    def _act(self, direction: str, check: str, action: str, kinds: Counter, excerpt: str | None = None) -> None:
        event = {"direction": direction, "check": check, "action": action, "kinds": dict(sorted(kinds.items()))}
        if self.switch_id is None and self.policy.switch_ids:
            self.switch_id = dict(self.policy.switch_ids).get(FIELD_OF[direction, check])
        if excerpt is not None and self.policy.guard_event_content == EventContent.REDACTED:
            event["excerpt"] = excerpt
        self.actions.append(event)
        metrics.labelled(metrics.GATEWAY_GUARDRAIL_ACTIONS, direction, check, action).inc()
        log.info("guardrail %s %s %s: %s", direction, check, action, _kinds_phrase(kinds))

    def _time(self, direction: str, started: float) -> None:
        self.seconds[direction] += time.perf_counter() - started

    def _report(self, direction: str) -> None:
        """One observation per request and direction (a stream's scans of its deltas summed)."""
        metrics.labelled(metrics.GATEWAY_GUARDRAIL_SECONDS, direction).observe(self.seconds[direction])

    def _blocked(self, what: str, *, recorded: bool = False) -> Blocked:
        blocked = Blocked(f"This key's guardrail policy blocks {what}.", actions=tuple(self.actions),
                          recorded=recorded)
        blocked.switch_id = self.switch_id
        return blocked

    # -- input ----------------------------------------------------------------------------------------------
    def _texts_input(self, texts: list[str], injection_scanned: list[bool]) -> list[str]:
        """The texts the upstream may receive (redacted per policy); raises Blocked."""
        policy = self.policy
        if policy.guard_injection != Injection.OFF:
            kinds, first = Counter(), None
            for text, scanned in zip(texts, injection_scanned, strict=True):
                if not scanned:
                    continue
                for finding in scan_injection(text):
                    kinds[str(finding.kind)] += 1
                    first = first or (text, finding.start)
            if kinds:
                excerpt = _excerpt(*first) if policy.guard_event_content == EventContent.REDACTED else None
                self._act("input", "injection", policy.guard_injection, kinds, excerpt)
                if policy.guard_injection == Injection.BLOCK:
                    raise self._blocked(f"input that reads as a prompt injection ({_kinds_phrase(kinds)})")
        if policy.guard_input_pii == InputPii.ALLOW:
            return texts
        kinds, first, out = Counter(), None, []
        for text in texts:
            findings = detect_pii(text)
            for finding in findings:
                kinds[str(finding.type)] += 1
            if findings and first is None:
                first = (text, findings[0].start)
            out.append(redact_findings(text, findings) if findings else text)
        if kinds:
            excerpt = _excerpt(*first) if policy.guard_event_content == EventContent.REDACTED else None
            self._act("input", "pii", policy.guard_input_pii, kinds, excerpt)
            if policy.guard_input_pii == InputPii.BLOCK:
                raise self._blocked(f"personal data or secrets in the input ({_kinds_phrase(kinds)})")
        return out

    def chat_input(self, call: ChatCall) -> ChatCall:
        """The call with its messages checked (and redacted) per policy; raises Blocked."""
        self._plain = not call.stream
        if not self.policy.checks_input:
            return call
        started = time.perf_counter()
        try:
            places, texts, injection = [], [], []
            for index, message in enumerate(call.request.messages):
                if not isinstance(message, dict):
                    continue
                content = message.get("content")
                scanned = message.get("role") in INJECTION_ROLES
                if isinstance(content, str):
                    places.append((index, None))
                    texts.append(content)
                    injection.append(scanned)
                elif isinstance(content, list):
                    for part_index, part in enumerate(content):
                        if isinstance(part, dict) and isinstance(part.get("text"), str):
                            places.append((index, part_index))
                            texts.append(part["text"])
                            injection.append(scanned)
            checked = self._texts_input(texts, injection)
        finally:
            self._time("input", started)
            self._report("input")
        if checked is texts or checked == texts:  # a redact policy that found nothing: the same call, not a copy
            return call
        messages = [dict(m) if isinstance(m, dict) else m for m in call.request.messages]
        for (index, part_index), old, new in zip(places, texts, checked, strict=True):
            if old == new:
                continue
            if part_index is None:
                messages[index]["content"] = new
            else:
                parts = messages[index]["content"] = list(messages[index]["content"])
                parts[part_index] = {**parts[part_index], "text": new}
        return dataclasses.replace(call, request=dataclasses.replace(call.request, messages=messages))

    def texts_input(self, texts: list[str]) -> list[str]:
        """Embedding inputs checked (and redacted) per policy; raises Blocked."""
        if not self.policy.checks_input:
            return texts
        started = time.perf_counter()
        try:
            return self._texts_input(texts, [True] * len(texts))
        finally:
            self._time("input", started)
            self._report("input")

    # -- recording ------------------------------------------------------------------------------------------
    def recorder(self, base):
        """The call path's Recorder: adds this request's safety events to the call's record. While the output is
        still being scanned, an answered call's record waits here (settle() sends it, before the last bytes)."""
        if not self.policy.active:
            return base
        self._base = base
        self._hold = self._plain and self.policy.guard_output != OutputScan.OFF  # streams: relay() holds

        async def record(record: CallRecord) -> None:
            if self._hold and record.status == CallStatus.OK and self._held is None:
                self._held = record
                return
            await base(self._stamped(record))

        return record

    def _stamped(self, record: CallRecord) -> CallRecord:
        if not self.actions:
            return record
        blocked = any(a["action"] == "block" for a in self.actions)
        marked = {} if self.switch_id is None else {"context": dataclasses.replace(record.context,
                                                                                   switch_id=self.switch_id)}
        return dataclasses.replace(record, guardrail_actions=tuple(self.actions),
                                   error_type=record.error_type or (CODE if blocked else ""), **marked)

    async def settle(self) -> None:
        """Send the held record (with every safety event) to the recorder."""
        self._hold = False
        held, self._held = self._held, None
        if held is not None:
            await self._base(self._stamped(held))

    # -- output ---------------------------------------------------------------------------------------------
    def _output_found(self, kinds: Counter, text: str, at: int) -> None:
        excerpt = _excerpt(text, at) if self.policy.guard_event_content == EventContent.REDACTED else None
        self._act("output", "pii", self.policy.guard_output, kinds, excerpt)

    async def chat_output(self, result: ChatResult) -> ChatResult:
        """A plain answer scanned per policy, its text and its tool calls' arguments (flagged, redacted, or
        refused: Blocked after recording)."""
        mode = self.policy.guard_output
        if mode == OutputScan.OFF:
            return result
        kinds, first = Counter(), None
        try:
            started = time.perf_counter()
            scanned = [(text, detect_pii(text)) for text in (result.text or "", *(t.arguments for t in
                                                                                 result.tool_calls))]
            for text, findings in scanned:
                if findings:
                    kinds.update(str(f.type) for f in findings)
                    first = first or (text, findings[0].start)
            if kinds:
                self._output_found(kinds, *first)
                if mode == OutputScan.REDACT:
                    (text, found), *calls = scanned
                    result = dataclasses.replace(result, text=redact_findings(text, found) if found else text,
                                                 tool_calls=tuple(dataclasses.replace(
                                                     call, arguments=redact_findings(args, found)) if found else call
                                                     for call, (args, found) in zip(result.tool_calls, calls,
                                                                                    strict=True)))
            self._time("output", started)
            self._report("output")
        finally:
            await self.settle()
        if kinds and mode == OutputScan.BLOCK:
            raise self._blocked(f"personal data or secrets in the answer ({_kinds_phrase(kinds)})", recorded=True)
        return result

    async def relay(self, stream) -> AsyncIterator[StreamDelta]:
        """The deltas to send for `stream`'s (text, and tool-call pieces). Flag: as they come, the text and the
        tool calls' arguments scanned whole at the end. Redact and block: the text, and each tool call's arguments,
        through a hold-back window of their own (a call's first piece, its id and name, leaves at once). A block
        closes the upstream, records, and raises Blocked (recorded)."""
        mode = self.policy.guard_output
        if mode == OutputScan.OFF:
            async for delta in stream:
                yield delta
            return
        window = None if mode == OutputScan.FLAG else HoldBack(settings.GATEWAY_GUARD_HOLDBACK_CHARS)
        tools: dict[int, HoldBack] = {}  # a window per streamed tool call (its index)
        while True:
            self._hold = True  # the upstream's last piece records the call: it waits for the tail's scan
            try:
                delta = await stream.__anext__()
            except StopAsyncIteration:
                break
            finally:
                self._hold = False
            if window is None:
                yield delta
                continue
            started = time.perf_counter()
            text, findings = window.feed(delta.text)
            pieces = []
            for piece in delta.tool_calls:
                held = tools.setdefault(piece.index, HoldBack(window.size))
                arguments, found = held.feed(piece.arguments)
                findings = findings or found
                if arguments or piece.id or piece.name:
                    pieces.append(dataclasses.replace(piece, arguments=arguments))
            self._time("output", started)
            if findings and mode == OutputScan.BLOCK:
                await self._stream_block(stream, [window, *tools.values()], findings)
            if text or pieces:
                yield StreamDelta(text=text, tool_calls=tuple(pieces))
        started = time.perf_counter()
        tail, tool_tails = "", ()
        if window is None:
            kinds, first = Counter(), None
            for text in (stream.text, *(t.arguments for t in stream.result.tool_calls)):
                findings = detect_pii(text)
                kinds.update(str(f.type) for f in findings)
                first = first or (findings and (text, findings[0].start))
            if kinds:
                self._output_found(kinds, *first)
        else:
            tail, findings = window.flush()
            tool_tails = [(index, *held.flush()) for index, held in sorted(tools.items())]
            findings = findings or next((found for _i, _t, found in tool_tails if found), [])
            self._time("output", started)
            windows = [window, *tools.values()]
            if findings and mode == OutputScan.BLOCK:
                await self._stream_block(stream, windows, findings)
            started = time.perf_counter()
            kinds = sum((w.kinds for w in windows), Counter())
            if kinds:
                self._output_found(kinds, *next(w.first for w in windows if w.first))
            tool_tails = tuple(ToolCallDelta(index=index, arguments=text) for index, text, _f in tool_tails if text)
        self._time("output", started)
        self._report("output")
        await self.settle()
        if tail or tool_tails:
            yield StreamDelta(text=tail, tool_calls=tool_tails)

    async def _stream_block(self, stream, windows: list[HoldBack], findings: list[PiiFinding]) -> None:
        kinds = sum((w.kinds for w in windows), Counter()) + Counter(str(f.type) for f in findings)
        self._output_found(kinds, *next(w.first for w in windows if w.first))
        self._report("output")
        await stream.aclose()  # records the call (cancelled) with the block on it; a finished one is held
        await self.settle()
        raise self._blocked(f"personal data or secrets in the answer ({_kinds_phrase(kinds)})", recorded=True)


class HoldBack:
    """The stream's hold-back window: text leaves only once `size` characters follow it, never cut inside a
    finding, with the findings it releases replaced by their placeholders. `kinds` counts what was released
    redacted; `first` is the scanned text and offset of the first finding (for a redacted excerpt)."""

    def __init__(self, size: int):
        self.size = max(0, size)
        # Scan once this many new characters wait beyond the window, not on every delta (a delta is a token or
        # two): the text stays held meanwhile, so nothing unscanned leaves.
        self.step = max(1, self.size // 2)
        self.pending = ""
        self.context = ""  # the end of what was sent (as written), scanned again for cue words only
        self.kinds: Counter = Counter()
        self.first: tuple[str, int] | None = None

    def feed(self, text: str) -> tuple[str, list[PiiFinding]]:
        """(the text that may leave now, the findings in the window; none when it was not scanned yet)."""
        self.pending += text
        if len(self.pending) < self.size + self.step:
            return "", []
        return self._release(final=False)

    def flush(self) -> tuple[str, list[PiiFinding]]:
        return self._release(final=True)

    def _release(self, *, final: bool) -> tuple[str, list[PiiFinding]]:
        scanned = self.context + self.pending
        offset = len(self.context)
        findings = [f for f in detect_pii(scanned) if f.end > offset]  # one wholly sent was handled then
        if findings and self.first is None:
            self.first = (scanned, max(findings[0].start, offset))
        cut = len(scanned) if final else max(offset, len(scanned) - self.size)
        for finding in findings:
            if finding.start < cut < finding.end:
                cut = max(offset, finding.start)
        parts, position = [], offset
        for finding in findings:  # ordered by position
            if finding.start >= cut:
                break
            parts += [scanned[position:max(position, finding.start)], PLACEHOLDERS[finding.type]]
            position = finding.end
            self.kinds[str(finding.type)] += 1
        parts.append(scanned[position:cut])
        if cut > offset:
            self.context = scanned[max(0, cut - _CONTEXT):cut]
        self.pending = scanned[cut:]
        return "".join(parts), findings
