"""`make bench`: run every benchmark, print the figures, save them to bench/results/<date>.json.

Usage: python bench/run.py [name ...] [--with-suite]
  names: startup, home (default: all quick ones); --with-suite also times the whole `make test`.
Copy the figures into BENCHMARKS.md with the machine and the date.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BASE_DIR, RESULTS_DIR, git_rev, machine, now_utc  # noqa: E402


def bench_startup() -> dict:
    from bench import startup

    return startup.run()


def bench_home() -> dict:
    # In a subprocess: it configures Django against the benchmark database.
    out = subprocess.run([sys.executable, "-m", "bench.home_page"], cwd=BASE_DIR, capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()[-1]
    import ast

    return ast.literal_eval(out)


def bench_suite() -> dict:
    started = time.monotonic()
    proc = subprocess.run(["make", "test"], cwd=BASE_DIR, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    return {"seconds": round(elapsed, 1), "exit_code": proc.returncode, "summary": tail, "goal_s": 600}


def _bench_module(module: str, timeout: int = 1800) -> dict:
    """Run `python -m <module>` in its own process (it configures Django against the bench database); it prints JSON."""
    out = subprocess.run([sys.executable, "-m", module], cwd=BASE_DIR, capture_output=True, text=True, check=True,
                         timeout=timeout).stdout
    return json.loads(out[out.index("{"):])


def bench_prompts_resolve() -> dict:
    return _bench_module("bench.prompts_resolve")


def bench_prompts_catalog() -> dict:
    return _bench_module("bench.prompts_catalog")


BENCHES = {"startup": bench_startup, "home": bench_home, "prompts_resolve": bench_prompts_resolve,
           "prompts_catalog": bench_prompts_catalog,
           "resolve_breakdown": lambda: _bench_module("bench.resolve_breakdown"),
           "evals_run": lambda: _bench_module("bench.evals_run"),
           "evals_page": lambda: _bench_module("bench.evals_page"),
           "costs_ingest": lambda: _bench_module("bench.costs_ingest"),
           # generates 10M events the first time (about half an hour here), then reuses them
           "costs_dashboard": lambda: _bench_module("bench.costs_dashboard", timeout=5400),
           # RAG: SciFact tuned on train, reported on test; 100k-chunk hybrid latency; indexing throughput
           "rag_scifact": lambda: _bench_module("bench.rag_scifact", timeout=7200),
           "rag_latency": lambda: _bench_module("bench.rag_latency", timeout=7200),
           "rag_indexing": lambda: _bench_module("bench.rag_indexing", timeout=7200),
           # issue #18: SciFact, CISI and MED: each leg, bm25s, plain RRF baseline, macro, leave-one-out
           "rag_collections": lambda: _bench_module("bench.rag_collections", timeout=7200),
           # issue #12: 50 API clients against `make run` for 2 minutes, then a 10-minute soak
           "web_connections": lambda: _bench_module("bench.web_connections", timeout=1800),
           # issue #16: scorecard refresh for 500 use cases over 10 M events' rollups; portfolio page p50/p95
           "scorecards": lambda: _bench_module("bench.scorecards", timeout=3600),
           # issue #14: 100 concurrent calls against a gateway budget cap (overspend), the reservation's cost
           "gateway_budget_race": lambda: _bench_module("bench.gateway_budget_race"),
           # issue #14: the gateway's response cache, hit against miss, plain and streamed
           "gateway_cache": lambda: _bench_module("bench.gateway_cache"),
           # issue #14: the guardrails' time per request (input, output, streamed output) for 1 kB and 8 kB texts
           "gateway_guardrails": lambda: _bench_module("bench.gateway_guardrails", timeout=1800),
           # issue #14: gateway added latency at 100/500 req/s, ramp, RSS, streamed usage; LiteLLM side by side
           # (its own venv under .portal/bench-litellm, made on first use)
           "gateway_load": lambda: _bench_module("bench.gateway_load", timeout=1800),
           # issue #16: evaluation of every SLO of 500 use cases over 28 days of SLI counts; recorder overhead
           "slos": lambda: _bench_module("bench.slos", timeout=1800),
           # issue #14: the gateway's CPU per request (this tree, --baseline DIR, --other-workers N), py-spy profile
           "gateway_profile": lambda: _bench_module("bench.gateway_profile", timeout=1800),
           # issue #15: click on a switch -> the last of two gateway processes obeying, 200 toggles
           "incident_switches": lambda: _bench_module("bench.incident_switches", timeout=1800),
           # issue #16: gateway added latency with an online experiment running against none (same run, ratio)
           "experiments": lambda: _bench_module("bench.experiments"),
           # issue #17: 1,000 red-team attacks against a 200 ms stand-in at concurrency 20; report with 10,000
           "redteam": lambda: _bench_module("bench.redteam", timeout=1800),
           # issue #15: the incident metrics page over 5,000 incidents, and the selector the scorecards read
           "incidents_metrics": lambda: _bench_module("bench.incidents_metrics"),
           # issue #15: a signal (stand-in outage -> breaker open; a budget cap hit) -> incident/suggestion, on beat
           "incident_detection": lambda: _bench_module("bench.incident_detection", timeout=1800),
           # issue #14: gateway_load with a full key (limits, budgets, guardrails) beside LiteLLM's master key
           "gateway_load_full": lambda: _bench_module("bench.gateway_load_full", timeout=1800),
           # issue #15: the task-success-drop rule on 500 use cases (fold + read per tick); key series in the recorder
           "incident_live_quality": lambda: _bench_module("bench.incident_live_quality", timeout=1800),
           # issue #16 (sc-more): the recorder with and without the per-use-case token histogram (same run)
           "tokens_recorder": lambda: _bench_module("bench.tokens_recorder"),
           # issue #17 (rt-gateway): where a 1,000-attack campaign's time goes (phases, slots filled, CPU per thread)
           "redteam_profile": lambda: _bench_module("bench.redteam_profile", timeout=1800),
           # issue #18 (query half): per leg with/without the embedding, API vs service, ~100k real-text chunks
           # (run `python -m bench.rag_query embed` first: hours on 2 shared cores; it resumes)
           "rag_query": lambda: _bench_module("bench.rag_query", timeout=7200),
           # issue #18: nDCG@10 of the vector leg, plain sentence-transformers against the portal's runtime
           "rag_embedding_quality": lambda: _bench_module("bench.rag_embedding_quality", timeout=7200),
           # issue #17 (rt-rag): a real copy of a 10k-chunk collection vs the overlay; 200 indirect attacks against it
           "redteam_rag": lambda: _bench_module("bench.redteam_rag", timeout=1800),
           # issue #14 (gw-fast): floor, this tree (and --baseline DIR) at 1 and 2 workers, full key, added latency
           "gateway_fast": lambda: _bench_module("bench.gateway_fast", timeout=1800),
           # issue #14: the gateway recorder's CPU per record, the batch priced in one query vs a query per row
           "gateway_recorder": lambda: _bench_module("bench.gateway_recorder"),
           # issue #14: the stand-in upstream's CPU per request on h11 and httptools (it shares the gateway's cores)
           "standin_server": lambda: _bench_module("bench.standin_server"),
           # issue #14: the gateway process's CPU per Redis round trip: redis-py's asyncio client vs a bare connection
           "redis_round_trip": lambda: _bench_module("bench.redis_round_trip"),
           }
NEEDS_SCIFACT = {"rag_scifact", "rag_indexing", "rag_embedding_quality"}


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("--")] or list(BENCHES)
    if not os.environ.get("SCIFACT_DIR"):  # the BEIR SciFact data is not in the repository (docs/rag.md)
        skipped = [n for n in names if n in NEEDS_SCIFACT]
        if skipped:
            print(f"== skipping {', '.join(skipped)}: set SCIFACT_DIR to the BEIR SciFact folder", flush=True)
        names = [n for n in names if n not in NEEDS_SCIFACT]
    missing = [env for env in ("SCIFACT_DIR", "CISI_DIR", "MED_DIR") if not os.environ.get(env)]
    if missing and "rag_collections" in names:  # the three BEIR folders are not in the repository (docs/rag.md)
        print(f"== skipping rag_collections: set {', '.join(missing)}", flush=True)
        names = [n for n in names if n != "rag_collections"]
    results = {"date": now_utc(), "machine": machine(), "commit": git_rev(), "results": {}}
    for name in names:
        print(f"== {name}", flush=True)
        results["results"][name] = BENCHES[name]()
        print(json.dumps(results["results"][name], indent=2), flush=True)
    if "--with-suite" in argv:
        print("== make test", flush=True)
        results["results"]["suite"] = bench_suite()
        print(json.dumps(results["results"]["suite"], indent=2), flush=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"saved {out.relative_to(BASE_DIR)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
