"""First-visit and repeat-visit load of the chart pages in Chromium, against a live server with demo data.

The server is started the way `make run` starts it (`portal_setup`, then `runserver` with the dev settings) on
its own database, `portal_bench_front`, after `seed_demo` has loaded the demo data into it (once; idempotent).
For each page, a fresh browser context logs in as `pat` (the product managers' view), its HTTP cache is
cleared, then the page is opened (first visit) and, after the home page, opened again (repeat visit). Figures:
bytes over the wire (CDP encodedDataLength, headers included), requests, how many came from the cache, and the
time from navigation start until every chart on the page is drawn (an `svg.main-svg` in each chart).
Two network profiles: plain loopback, and a throttled link (10 Mbit/s, 40 ms RTT) like an office VPN.

    python -m bench.frontend_load [--runs 5] [--port 8765]

Needs Debian's Chromium (/usr/bin/chromium or PORTAL_CHROMIUM) and Playwright.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

from bench.common import BASE_DIR, git_rev, machine, now_utc

DATABASE = "portal_bench_front"
PAGES = ["/costs/", "/evals/dashboards/"]
PROFILES = {"loopback": None, "10 Mbit/s, 40 ms RTT": {"latency": 40, "throughput": 10_000_000 / 8}}
CHART_CONTAINERS = "[data-chart], .plotly-graph-div"  # the chart helper's container (before: plotly's own div)


def _env() -> dict:
    from portal import embedded

    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "portal.settings.dev"
    env.setdefault("LOG_LEVEL", "WARNING")
    if not env.get("DATABASE_URL"):
        admin_url = embedded.database_url()
        import psycopg

        with psycopg.connect(admin_url.replace("/portal?", "/postgres?"), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", [DATABASE]).fetchone():
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
        env["DATABASE_URL"] = admin_url.replace("/portal?", f"/{DATABASE}?")
    env.setdefault("REDIS_URL", embedded.redis_url())
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(env: dict, port: int) -> subprocess.Popen:
    manage = [sys.executable, str(BASE_DIR / "manage.py")]
    subprocess.run([*manage, "portal_setup"], env=env, cwd=BASE_DIR, check=True, stdout=subprocess.DEVNULL)
    marker = BASE_DIR / ".portal" / f"{DATABASE}.seeded"
    if not marker.exists():
        print("[bench] loading the demo data once (a few minutes)…", file=sys.stderr, flush=True)
        subprocess.run([*manage, "seed_demo"], env=env, cwd=BASE_DIR, check=True, stdout=subprocess.DEVNULL)
        marker.write_text(now_utc())
    server = subprocess.Popen([*manage, "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
                              env=env, cwd=BASE_DIR, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError("the server did not come up")


class _Wire:
    """Counts what one page load moves over the network, from the DevTools protocol's events."""

    def __init__(self, cdp):
        self.bytes = 0
        self.requests = 0
        self.from_cache = 0
        cdp.on("Network.requestWillBeSent", self._sent)
        cdp.on("Network.loadingFinished", self._finished)
        cdp.on("Network.requestServedFromCache", self._cached)

    def _sent(self, _event):
        self.requests += 1

    def _finished(self, event):
        self.bytes += int(event.get("encodedDataLength", 0))

    def _cached(self, _event):
        self.from_cache += 1

    def reset(self):
        self.bytes = self.requests = self.from_cache = 0


def _charts_drawn_ms(page) -> float:
    """Milliseconds from navigation start until every chart's panel holds a drawn svg.main-svg (in its panel, not
    its container: before the fix, the evals page's charts were drawn into the panel itself)."""
    handle = page.wait_for_function(
        """(selector) => {
            const charts = document.querySelectorAll(selector);
            if (!charts.length || document.readyState === "loading") return false;
            for (const c of charts) { if (!(c.closest("section") || c).querySelector("svg.main-svg")) return false; }
            return performance.now();
        }""", arg=CHART_CONTAINERS, polling="raf", timeout=60_000)
    return float(handle.json_value())


def measure(base_url: str, runs: int) -> dict:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("PORTAL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    results: dict = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--headless=new", "--no-sandbox",
                                                                             "--disable-gpu", "--disable-dev-shm-usage"])
        for profile, throttle in PROFILES.items():
            for path in PAGES:
                samples: dict[str, list] = {"first": [], "repeat": []}
                for _ in range(runs):
                    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
                    page = context.new_page()
                    cdp = context.new_cdp_session(page)
                    cdp.send("Network.enable")
                    wire = _Wire(cdp)
                    page.goto("/accounts/login/")
                    page.get_by_label("Username").fill("pat")
                    page.get_by_label("Password").fill("portal-demo")
                    page.get_by_role("button", name="Log in").click()
                    page.wait_for_url("**/")
                    cdp.send("Network.clearBrowserCache")
                    if throttle:
                        cdp.send("Network.emulateNetworkConditions", {
                            "offline": False, "latency": throttle["latency"],
                            "downloadThroughput": throttle["throughput"], "uploadThroughput": throttle["throughput"]})
                    for visit in ("first", "repeat"):
                        wire.reset()
                        if visit == "repeat":  # back to the page later (a new navigation, not a reload)
                            page.goto("/", wait_until="load")
                            wire.reset()
                        page.goto(path, wait_until="commit")
                        drawn = _charts_drawn_ms(page)
                        page.wait_for_load_state("load")
                        page.wait_for_timeout(300)  # late requests (favicon, htmx loads)
                        samples[visit].append({"ms": drawn, "bytes": wire.bytes, "requests": wire.requests,
                                               "from_cache": wire.from_cache})
                    context.close()
                results[f"{profile} {path}"] = {
                    visit: {"charts_drawn_ms_median": round(statistics.median(s["ms"] for s in rows)),
                            "charts_drawn_ms_max": round(max(s["ms"] for s in rows)),
                            "kb_transferred": round(statistics.median(s["bytes"] for s in rows) / 1024),
                            "requests": round(statistics.median(s["requests"] for s in rows)),
                            "from_cache": round(statistics.median(s["from_cache"] for s in rows))}
                    for visit, rows in samples.items()}
        browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(BASE_DIR))
    env = _env()
    port = args.port or _free_port()
    server = _start_server(env, port)
    try:
        results = measure(f"http://127.0.0.1:{port}", args.runs)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)
    print(json.dumps({"date": now_utc(), "rev": git_rev(), "machine": machine(),
                      "load": os.getloadavg(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
