"""What the per-use-case token histogram (TokensDaily, sc-more) adds to the gateway recorder, side by side.

    .venv/bin/python -m bench.tokens_recorder [--batches 30]

`--batches` batches of 500 gateway ledger rows (50 use cases, 1 % errors, token counts spread over 40 to 40,000)
written as `recording.drain_once` writes them — `ledger_write` + `traffic_add` + `sli_add` in one transaction —
with the token upsert (`traffic.tokens_add`) and without it (patched to a no-op: the recorder before sc-more),
alternating so both see the same load; the median per batch of each, the difference and the ratio, and the token upsert timed alone inside the
"with" batches (p50, min): at a load of 15 on 2 cores the batches' spread hides a few milliseconds. Twice: calls of one day, and a batch straddling
midnight (two days: twice the rows). Uses the `portal_bench` database (bench/common.py). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime

from bench.common import machine, now_utc, setup_django
from bench.slos import rows_batch


def bench(batches: int, straddle: bool) -> dict:
    from django.db import transaction

    from apps.accounts.models import Team
    from apps.costs.ledger import ledger_write
    from apps.gateway import sli, traffic

    team, _ = Team.objects.get_or_create(slug="bench-slos", defaults={"name": "Bench SLOs"})
    use_case_ids = list(range(10_000_000, 10_000_050))  # counts only: no use case rows are needed
    at = datetime.now(UTC).replace(hour=23, minute=59, second=30, microsecond=0) if straddle else \
        datetime.now(UTC).replace(second=0, microsecond=0)
    rng = random.Random(3)
    real = traffic.tokens_add
    times = {"without": [], "with": []}
    upserts = []

    def timed(tokens) -> None:  # the token upsert alone, inside the "with" batches
        started = time.perf_counter()
        real(tokens)
        upserts.append((time.perf_counter() - started) * 1000)

    for i in range(batches * 2 + 2):
        mode = "with" if i % 2 else "without"
        rows = rows_batch(999_999, team.pk, use_case_ids, at, 60)
        for row in rows:
            row["input_tokens"] = int(rng.lognormvariate(6.5, 1.2)) + 40
            row["output_tokens"] = int(rng.lognormvariate(4.5, 1.0))
        traffic.tokens_add = timed if mode == "with" else (lambda tokens: None)
        try:
            started = time.perf_counter()
            with transaction.atomic():
                inserted = ledger_write(rows)
                traffic.traffic_add(inserted)
                sli.sli_add(inserted)
            elapsed = (time.perf_counter() - started) * 1000
        finally:
            traffic.tokens_add = real
        if i >= 2:  # the first pair warms the caches
            times[mode].append(elapsed)
    without, with_tokens = statistics.median(times["without"]), statistics.median(times["with"])
    return {"batch_rows": 500, "use_cases": 50, "days_in_batch": 2 if straddle else 1, "batches_each": batches,
            "batch_ms_without_p50": round(without, 1), "batch_ms_with_p50": round(with_tokens, 1),
            "added_ms_per_batch": round(with_tokens - without, 1),
            "added_us_per_call": round((with_tokens - without) * 1000 / 500, 1),
            "ratio": round(with_tokens / without, 3),
            "token_upsert_ms_p50": round(statistics.median(upserts[2:]), 2),
            "token_upsert_ms_min": round(min(upserts[2:]), 2),
            "spread_ms_without": [round(min(times["without"]), 1), round(max(times["without"]), 1)],
            "spread_ms_with": [round(min(times["with"]), 1), round(max(times["with"]), 1)]}


def run(batches: int = 30) -> dict:
    setup_django()
    return {"date": now_utc(), "machine": machine(), "load": os.getloadavg(),
            "one_day": bench(batches, straddle=False), "two_days": bench(batches, straddle=True)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=30)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.batches), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
