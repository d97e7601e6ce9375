"""Resolve API under gunicorn: server time (p50/p99), requests per second, and no stale read after a promotion.

Starts gunicorn (production settings, DEBUG off) on a free loopback port against the `portal_bench`
database, seeds one team, a token and a prompt with a production label, warms the cache, then hammers
`GET /api/v1/prompts/bench/resolve-target/resolve?label=production` from client processes (each a pool
of keep-alive HTTP connections) for a bounded time.

Server time is gunicorn's own per-request time (access log `%(D)s`, microseconds from request read to
response written); client latency is measured too. After the load, it promotes a new version ten times
(open + approve through the services, as the browser does) and checks that the very next request
serves it: `stale_reads_after_promotion` must be 0.

Usage: python -m bench.prompts_resolve [--seconds 15] [--workers 2] [--threads 1] [--clients 1x4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import BASE_DIR, percentile, setup_django, stop_process, use_bench_database

PROMPT = "bench/resolve-target"
PATH = f"/api/v1/prompts/{PROMPT}/resolve?label=production"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed() -> dict:
    """Idempotent: a team, two engineers, a read token, and the prompt with a production version."""
    from django.contrib.auth import get_user_model

    from apps.accounts.models import Membership, Role, Team
    from apps.accounts.services import api_token_create
    from apps.core.request_context import acting_as
    from apps.prompts.content import Draft
    from apps.prompts.models import Prompt
    from apps.prompts.services import promotion_request_approve, promotion_request_open, prompt_create

    User = get_user_model()
    team, _ = Team.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    people = []
    for username in ("bench-author", "bench-approver"):
        user, _ = User.objects.get_or_create(username=username)
        Membership.objects.get_or_create(team=team, user=user, defaults={"role": Role.ENGINEER})
        people.append(user)
    author, approver = people
    with acting_as(author):
        if not Prompt.objects.filter(name="bench/tone").exists():
            tone = prompt_create(team=team, name="bench/tone", actor=author,
                                 draft=Draft(kind="text", template="Answer in a {{ tone }} tone."))
            request = promotion_request_open(prompt=tone, version=tone.versions.get(), actor=author)
            promotion_request_approve(request=request, user=approver)
        prompt = Prompt.objects.filter(name=PROMPT).first()
        if prompt is None:
            template = ('{% include_prompt "bench/tone" %}\nSummarise this ticket for {{ customer }}:\n'
                        "<ticket>\n{{ ticket }}\n</ticket>")
            prompt = prompt_create(team=team, name=PROMPT, actor=author,
                                   draft=Draft(kind="text", template=template,
                                               config={"model": "gpt-4o-mini", "temperature": 0.2,
                                                       "max_tokens": 300}))
            request = promotion_request_open(prompt=prompt, version=prompt.versions.get(), actor=author)
            promotion_request_approve(request=request, user=approver)
        issued = api_token_create(team=team, user=author, name="bench-resolve", scope="read", days=1)
    return {"token": issued.secret, "prompt_id": prompt.pk, "author": author.pk, "approver": approver.pk}


def _client_worker(args) -> tuple[list[float], int, int]:
    port, token, threads, deadline = args
    import threading

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def loop():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        local, bad = [], 0
        headers = {"Authorization": f"Bearer {token}"}
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                conn.request("GET", PATH, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    bad += 1
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            except (OSError, http.client.HTTPException):
                bad += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            local.append(time.perf_counter() - started)
        with lock:
            latencies.extend(local)
            errors[0] += bad

    pool = [threading.Thread(target=loop) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return latencies, errors[0], len(latencies)


def _get(port: int, token: str, if_none_match: str | None = None) -> tuple[int, dict | None, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {token}"}
    if if_none_match:
        headers["If-None-Match"] = if_none_match
    conn.request("GET", PATH, headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = {"raw": body[:500].decode(errors="replace")}
    return response.status, parsed, response.getheader("ETag") or ""


def _promotions(port: int, token: str, ids: dict, count: int = 10) -> dict:
    """Promote a new version `count` times; the next request after each must serve it."""
    from django.contrib.auth import get_user_model

    from apps.core.request_context import acting_as
    from apps.prompts.content import Draft
    from apps.prompts.models import Prompt
    from apps.prompts.services import promotion_request_approve, promotion_request_open, version_create

    User = get_user_model()
    author, approver = User.objects.get(pk=ids["author"]), User.objects.get(pk=ids["approver"])
    prompt = Prompt.objects.get(pk=ids["prompt_id"])
    stale, visible_ms = 0, []
    for i in range(count):
        _, before, etag = _get(port, token)
        with acting_as(author):
            template = (f"Summarise this ticket (revision {time.time_ns()}-{i}) for {{{{ customer }}}}:\n"
                        "<ticket>\n{{ ticket }}\n</ticket>")
            version = version_create(prompt=prompt, draft=Draft(kind="text", template=template), actor=author).version
            request = promotion_request_open(prompt=prompt, version=version, actor=author)
        started = time.perf_counter()
        with acting_as(approver):
            promotion_request_approve(request=request, user=approver)
        status, after, _ = _get(port, token, if_none_match=etag)
        visible_ms.append((time.perf_counter() - started) * 1000)
        if status != 200 or after["version"] != version.number:
            stale += 1
    return {"promotions": count, "stale_reads_after_promotion": stale,
            "approve_to_next_response_ms_p50": round(percentile(visible_ms, 50), 1)}


def _server_times(log_path: Path, since_line: int) -> list[float]:
    lines = log_path.read_text().splitlines()[since_line:]
    return [int(line.strip()) / 1e6 for line in lines if line.strip().isdigit()]


def run(seconds: float = 15.0, workers: int = 2, threads: int = 1, client_procs: int = 1,
        client_threads: int = 4) -> dict:
    use_bench_database()
    setup_django()
    from django.conf import settings as django_settings

    assert django_settings.DATABASES["default"]["NAME"] == "portal_bench", "refusing to seed the dev database"
    from django.conf import settings

    ids = seed()
    port = _free_port()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-resolve-"))
    access_log = log_dir / "access.log"
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="portal.settings.production",
               SECRET_KEY="bench-only-secret-key-0123456789abcdef", SECURE_SSL_REDIRECT="false",
               ALLOWED_HOSTS="127.0.0.1,localhost", REDIS_URL=settings.REDIS_URL, CACHE_KEY_PREFIX="bench",
               LOG_LEVEL="WARNING", DEBUG="false")
    cmd = [sys.executable, "-m", "gunicorn", "portal.wsgi:application", "-b", f"127.0.0.1:{port}",
           "-w", str(workers), "-k", "gthread", "--threads", str(threads), "--keep-alive", "30",
           "--access-logfile", str(access_log), "--access-logformat", "%(D)s", "--log-level", "warning"]
    error_log = log_dir / "error.log"
    server = subprocess.Popen(cmd, cwd=BASE_DIR, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=error_log.open("w"))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body, _ = _get(port, ids["token"])
                if status == 200:
                    break
                raise RuntimeError(f"resolve answered {status}: {body}\n{error_log.read_text()[-3000:]}")
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("gunicorn did not start: " + error_log.read_text()[-3000:])
                time.sleep(0.2)
        for _ in range(200):  # warm every worker's connections and the cache
            _get(port, ids["token"])
        warm_lines = len(access_log.read_text().splitlines())
        started = time.monotonic()
        load_deadline = started + seconds
        with multiprocessing.get_context("spawn").Pool(client_procs) as pool:
            parts = pool.map(_client_worker, [(port, ids["token"], client_threads, load_deadline)] * client_procs)
        elapsed = time.monotonic() - started
        client = [lat for part in parts for lat in part[0]]
        errors = sum(part[1] for part in parts)
        time.sleep(0.5)  # let the access log flush
        server_times = _server_times(access_log, warm_lines)
        freshness = _promotions(port, ids["token"], ids)
    finally:
        stop_process(server, 20)
    ms = lambda values, pct: round(percentile(values, pct) * 1000, 2)  # noqa: E731
    return {
        "gunicorn": f"{workers} workers x {threads} threads (gthread), production settings, DEBUG off",
        "load": f"{client_procs} client processes x {client_threads} keep-alive connections, {seconds:.0f} s, "
                "on the same 2-core machine",
        "requests": len(client), "errors": errors, "req_per_s": round(len(client) / elapsed, 1),
        "server_p50_ms": ms(server_times, 50), "server_p99_ms": ms(server_times, 99),
        "client_p50_ms": ms(client, 50), "client_p99_ms": ms(client, 99),
        **freshness, "goal": "p50 < 5 ms, >= 500 req/s, no stale read after promotion",
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clients", default="1x4", help="processes x threads")
    args = parser.parse_args(argv)
    procs, threads = (int(x) for x in args.clients.split("x"))
    print(json.dumps(run(args.seconds, args.workers, args.threads, procs, threads), indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
