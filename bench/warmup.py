"""The first RAG query's embedding after a process starts, cold vs warmed (issue #11: 9.8 s cold).

Each case runs in a fresh Python process (as a new web process would): `cold` embeds one query at once;
`warm` runs the start-up warm-up (portal.warmup.warm_models) first, then times the same first query.

    python -m bench.warmup [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, os, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")
import django
django.setup()
started = time.perf_counter()
warm = None
if {warm!r}:
    from portal import warmup
    warmup.warm_models()
    warm = time.perf_counter() - started
from apps.llm.offline.embeddings import embed_texts
t = time.perf_counter()
embed_texts(["What is the hotel limit per night?"])
print(json.dumps({{"first_query_s": time.perf_counter() - t, "warm_up_s": warm}}))
"""


def run(warm: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD.format(warm=warm)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for warm in (False, True):
        results = [run(warm) for _ in range(args.runs)]
        first = [r["first_query_s"] for r in results]
        line = f"{'warmed' if warm else 'cold  '}: first query median {statistics.median(first):.3f} s " \
               f"(runs: {', '.join(f'{x:.3f}' for x in first)})"
        if warm:
            line += f"; warm-up at start {statistics.median(r['warm_up_s'] for r in results):.2f} s"
        print(line, flush=True)


if __name__ == "__main__":
    main()
