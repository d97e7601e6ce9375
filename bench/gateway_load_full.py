"""bench.gateway_load with everything a production key has switched on, LiteLLM's proxy beside it in the same run.

    .venv/bin/python -m bench.gateway_load_full [any bench.gateway_load option: --rates, --seconds, --streams, ...]

The gateway's key has request and token limits (as in bench.gateway_load), a dollars-per-day budget, its team
and feature under a hard-capped monthly budget (both reserved in Redis before every call, settled after), and
guardrails on (input PII redact, injection flag, output PII flag); its model is priced so the budgets
bite (a capped scope refuses an unpriced model).
The caps are far above what the run spends: they are checked on every call, never reached. Recording is on,
the recorder running. LiteLLM runs with its master key: its virtual keys and budgets need its Prisma client,
whose engines cannot be fetched on this offline machine (BENCHMARKS.md, gw-more; ADR 0083). So this is the
comparison that can be made honestly here: our gateway doing all of its per-request work against LiteLLM doing
the least of its own.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal

from bench import gateway_load

CAP = Decimal("1000000")  # dollars: checked on every call, never reached
REMOTE_NAME = "standin-chat"  # what the stand-in answers as (bench.gateway_path.standin_chat_model)


def switch_on(*, team, key) -> None:
    """bench.gateway_load's `--setup` hook: a price for bench-chat, a hard-capped team/feature budget, and the
    key's guardrails (the key's own dollars per day comes through `--key-options`)."""
    # why: the ORM exists only after bench.gateway_load has set Django up
    from apps.costs.models import Budget, Price
    from apps.gateway.services import gateway_key_guardrails_set

    if not Price.objects.filter(model_name=REMOTE_NAME).exists():  # prices are by the name the provider reports
        Price.objects.create(model_name=REMOTE_NAME, input_per_mtok=Decimal("0.15"), output_per_mtok=Decimal("0.60"),
                             valid_from=datetime(2020, 1, 1, tzinfo=UTC), source="bench")
    Budget.objects.get_or_create(team=team, feature=key.feature, tenant="", use_case_id=None, period="month",
                                 defaults={"name": "Bench full key", "amount": CAP, "hard_cap": CAP})
    gateway_key_guardrails_set(key=key, guard_input_pii="redact", guard_injection="flag", guard_output="flag")


def main() -> None:
    sys.argv[1:] = ["--setup", "bench.gateway_load_full:switch_on",
                    "--key-options", f'{{"dollars_per_day": "{CAP}"}}', *sys.argv[1:]]
    gateway_load.main()


if __name__ == "__main__":
    main()
