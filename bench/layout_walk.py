"""What the layout walk (tests/e2e/test_layout.py) adds to the suite: wall time and CPU time of the test alone.

Runs pytest on that one test in a subprocess (its own test database, suffix `_bench_layout`), reads the phases
from pytest's --durations and the pages walked from test-results/layout-pages.txt. CPU time (this process's
children: pytest, the live server thread, Chromium) is the figure that does not depend on how busy the machine
is; wall time is only meaningful with the load average beside it.

    python -m bench.layout_walk
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time

from bench.common import BASE_DIR, git_rev, machine, now_utc

TEST = "tests/e2e/test_layout.py::test_every_page_is_usable_for_every_demo_role_at_both_widths"


def run() -> dict:
    env = {**os.environ, "PORTAL_TEST_SUFFIX": "_bench_layout", "PORTAL_TEST_REDIS_DB": "7"}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pytest", TEST, "-q", "-p", "no:cacheprovider", "--durations=0",
                          "--durations-min=0"], cwd=BASE_DIR, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    phases = {m.group(2): float(m.group(1)) for m in re.finditer(r"([\d.]+)s (setup|call|teardown)\s+tests/e2e/test_layout",
                                                                  out.stdout)}
    pages = (BASE_DIR / "test-results" / "layout-pages.txt").read_text()
    return {
        "date": now_utc(), "rev": git_rev(), "machine": machine(), "passed": out.returncode == 0,
        "wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "phases_s": phases,
        "pages_per_role": dict(re.findall(r"^## (\w+) .*?: (\d+) pages", pages, re.M)),
        "load_before": round(load_before, 1), "load_after": round(os.getloadavg()[0], 1),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
