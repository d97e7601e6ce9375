"""Where a red-team campaign's wall time goes beyond the floor (issue #17, rt-gateway): the runner's own overhead.

The setting of `bench.redteam` (1,000 attacks at concurrency 20 against a 200 ms stand-in in its own process), run
phase by phase: start (expand and insert the attacks), the loop, finalize; inside the loop, each call's start and
end (wrapping `Work.call`), so the report says how long the loop ran before the first call and after the last, and
how full the 20 slots were in between (the sum of call times over 20 × the span); the CPU of each thread (the
loop's, the database thread's); and, with --cprofile, the top functions of each thread by own time.

Usage: python -m bench.redteam_profile [--attacks 1000] [--concurrency 20] [--latency-ms 200] [--cprofile]
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import sys
import threading
import time

from bench.redteam import bench_setup, campaign_args, launch_on, seed_probes, standin_process


def _top(profile: cProfile.Profile, n: int = 15, sort: str = "tottime", only: str = "") -> list[str]:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out).sort_stats(sort)
    stats.print_stats(*([only] if only else []), n)
    return [line.strip() for line in out.getvalue().splitlines() if line.strip()][-n:]


def profile_run(team, user, attacks: int, concurrency: int, latency_ms: float, *, cprofile: bool) -> dict:
    from apps.redteam import runner

    seed_probes(team, attacks)
    calls: list[tuple[float, float]] = []
    loop_cpu: dict[str, float] = {}
    profiles: dict[str, cProfile.Profile] = {}
    original_call, original_run = runner.Work.call, runner.Work._run

    async def timed_call(self, messages, model=None):
        started = time.monotonic()
        try:
            return await original_call(self, messages, model)
        finally:
            calls.append((started, time.monotonic()))

    async def profiled_run(self):
        cpu = time.thread_time()
        profile = cProfile.Profile() if cprofile else None
        if profile is not None:
            profile.enable()
        try:
            return await original_run(self)
        finally:
            if profile is not None:
                profile.disable()
                profiles["loop"] = profile
            loop_cpu["loop"] = time.thread_time() - cpu

    with standin_process(latency_ms) as server:
        campaign = launch_on(server, team, user, concurrency, name="bench-profile")
        runner.Work.call, runner.Work._run = timed_call, profiled_run
        try:
            t0, main_cpu = time.monotonic(), time.thread_time()
            runner.campaign_start(campaign.pk)
            t_started = time.monotonic()
            db_profile = cProfile.Profile() if cprofile else None
            if db_profile is not None:
                db_profile.enable()
            work_started = time.monotonic()
            runner.campaign_work(campaign.pk)  # finalizes at its end too
            t_end = time.monotonic()
            if db_profile is not None:
                db_profile.disable()
                profiles["db"] = db_profile
            main_cpu = time.thread_time() - main_cpu
        finally:
            runner.Work.call, runner.Work._run = original_call, original_run
    first, last = min(s for s, _ in calls), max(e for _, e in calls)
    busy = sum(e - s for s, e in calls)
    out = {"attacks": len(calls), "threads": threading.active_count(),
           "seconds_total": round(t_end - t0, 3), "floor_s": round(attacks * latency_ms / 1000 / concurrency, 2),
           "start_s": round(t_started - t0, 3),
           "loop_before_first_call_s": round(first - work_started, 3),
           "first_to_last_call_s": round(last - first, 3),
           "after_last_call_s (flush, finalize)": round(t_end - last, 3),
           "mean_call_ms": round(1000 * busy / len(calls), 1),
           "slots_filled": round(busy / (concurrency * (last - first)), 3),
           "cpu_s_loop_thread": round(loop_cpu.get("loop", 0), 2), "cpu_s_db_thread": round(main_cpu, 2)}
    for name, profile in profiles.items():
        out[f"top_{name}_thread"] = _top(profile)
        out[f"ours_{name}_thread_cumulative"] = _top(profile, 25, "cumulative", "apps/")
    return out


def main(argv: list[str]) -> dict:
    args = campaign_args(argv, ("--cprofile", {"action": "store_true"}))
    team, user = bench_setup(args.concurrency)
    profile_run(team, user, 20, args.concurrency, args.latency_ms, cprofile=False)  # warm up, as bench.redteam
    load = os.getloadavg()[0]
    out = profile_run(team, user, args.attacks, args.concurrency, args.latency_ms, cprofile=args.cprofile)
    return {"load_1m_before": round(load, 2), "load_1m_after": round(os.getloadavg()[0], 2), **out}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2, default=str))
