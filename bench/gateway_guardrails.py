"""What the gateway's guardrails cost per request (apps/gateway/guard.py), in process, for typical prompts.

    .venv/bin/python -m bench.gateway_guardrails [--requests 300] [--sizes 1024,8192] [--holdback 128]

For each size, a support-style text of that many characters (prose with an e-mail address, a phone number and
an order number per ~1 kB: what the checks must read past) is checked as a request would be, N times:

    input          chat_input: PII redacted, injection heuristics flagged (both on every message)
    input_pii      chat_input with only the PII redaction on; input_injection: only the injection heuristics
    output plain   chat_output: the answer scanned and redacted
    output stream  relay: the same answer as ~4-character deltas (a token each) through the hold-back window
    off            chat_input + chat_output with the default policy (all off): the price of having the hook

p50 / p99 in milliseconds of the guardrail time per request (Screen.seconds, what the histogram
`portal_gateway_guardrail_seconds` observes). No server, database or network: the checks only. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

from bench.common import machine, now_utc
from bench.gateway_servers import pct

PARAGRAPH = ("Hello, I ordered a replacement charger last week (order 4471-2209) and it still has not arrived. "
             "The tracking page says it left the warehouse on Monday, but nothing has moved since. Could you "
             "check what happened and tell me when I can expect it? You can reach me at {email} or call me on "
             "+49 30 2345 6789 in the afternoons. I would also like to know whether the refund for the first "
             "charger, which arrived broken, has been processed: the support agent said it takes 14 days and it "
             "has been three weeks now. Thank you for your help, and sorry for the long message. ")


def text_of(size: int) -> str:
    out, n = [], 0
    while sum(map(len, out)) < size:
        out.append(PARAGRAPH.format(email=f"customer{n}@mailbox-{n}.net"))
        n += 1
    return "".join(out)[:size]


class FakeStream:
    """What relay() reads: deltas, then the end (like acalls.AsyncChatStream)."""

    def __init__(self, text: str, piece: int = 4):
        self.text = text
        self._pieces = iter([text[i:i + piece] for i in range(0, len(text), piece)])

    async def __anext__(self):
        from apps.llm.results import StreamDelta

        try:
            return StreamDelta(text=next(self._pieces))
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self):
        return None


async def measure(size: int, requests: int) -> dict:
    from decimal import Decimal

    from apps.gateway.guard import Policy, Screen
    from apps.gateway.wire import ChatCall
    from apps.llm.results import ChatRequest, ChatResult, Usage

    text = text_of(size)
    call = ChatCall(model="chat", stream=False, include_usage=False,
                    request=ChatRequest(messages=[{"role": "system", "content": "You answer support mail."},
                                                  {"role": "user", "content": text}]))
    result = ChatResult(text=text, model="m", provider="p", usage=Usage(), latency_ms=0, cost=Decimal(0),
                        finish_reason="stop", usage_event_id=None, request_id="r")
    checks = Policy(guard_input_pii="redact", guard_injection="flag", guard_output="redact")
    times: dict[str, list[float]] = {"input": [], "input_pii": [], "input_injection": [], "output_plain": [],
                                     "output_stream": [], "off": []}
    alone = {"input_pii": Policy(guard_input_pii="redact"), "input_injection": Policy(guard_injection="flag")}
    for _ in range(requests):
        screen = Screen(checks)
        screen.chat_input(call)
        times["input"].append(screen.seconds["input"] * 1000)
        for name, policy in alone.items():
            screen = Screen(policy)
            screen.chat_input(call)
            times[name].append(screen.seconds["input"] * 1000)
        screen = Screen(checks)
        await screen.chat_output(result)
        times["output_plain"].append(screen.seconds["output"] * 1000)
        screen = Screen(checks)
        streamed = "".join([piece async for piece in screen.relay(FakeStream(text))])
        assert "[EMAIL]" in streamed and "@" not in streamed
        times["output_stream"].append(screen.seconds["output"] * 1000)
        started = time.perf_counter()
        screen = Screen(Policy())
        screen.chat_input(call)
        await screen.chat_output(result)
        times["off"].append((time.perf_counter() - started) * 1000)
    return {name: {"p50_ms": round(pct(values, 0.5), 3), "p99_ms": round(pct(values, 0.99), 3)}
            for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--sizes", default="1024,8192")
    parser.add_argument("--holdback", type=int, default=128)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")
    os.environ["GATEWAY_GUARD_HOLDBACK_CHARS"] = str(args.holdback)
    import django

    django.setup()
    results = {size: asyncio.run(measure(size, args.requests)) for size in map(int, args.sizes.split(","))}
    print(json.dumps({"date": now_utc(), "machine": machine(), "load_average": os.getloadavg(),
                      "requests": args.requests, "holdback_chars": args.holdback, "stream_delta_chars": 4,
                      "results": results}, indent=1, default=str))


if __name__ == "__main__":
    main()
