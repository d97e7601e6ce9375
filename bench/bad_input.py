"""Bad input against a live server (gunicorn on a free loopback port): NUL characters, lone surrogates, odd
numbers and dates, JSON nested 200,000 deep, bodies over the limit, OTLP of the wrong shape, gzip and PDF bombs,
files that are not what their name says, templates that grow without bound. Per endpoint family: tries, 5xx
answers (goal 0) and partial writes (goal 0: a refused request wrote something, or a batch wrote a bad item or
lost a good one).

    python -m bench.bad_input
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from bench.common import BASE_DIR
from bench.costs_common import setup
from bench.costs_ingest import _wait_for, free_port

DATABASE = "portal_bench"
TEAM = "bench-bad-input"
NUL, SURROGATE = "\x00", "\ud800"


def prepare() -> dict:
    from django.contrib.auth import get_user_model

    from apps.accounts.models import Role, Team
    from apps.accounts.services import api_token_create, membership_set, team_create
    from apps.costs.services import prices_seed
    from apps.evals.datasets import dataset_create
    from apps.evals.models import Dataset
    from apps.llm.services import catalog_seed_local
    from apps.rag.models import Collection
    from apps.rag.services import collection_create
    from portal.request_context import acting_as

    with acting_as(None):
        prices_seed()
        catalog_seed_local()
        team = Team.objects.filter(slug=TEAM).first() or team_create(name="Bench bad input", slug=TEAM)
        user, _ = get_user_model().objects.get_or_create(username=TEAM, defaults={"email": "bad@example.com"})
        membership_set(team=team, user=user, role=Role.OWNER)
        dataset = Dataset.objects.filter(name="bench/bad-input").first() or dataset_create(
            team=team, name="bench/bad-input", input_names=["question"], actor=user)
        collection = Collection.objects.filter(team=team, name="Bad input").first()
        if collection is None:
            from apps.llm.models import Model

            collection = collection_create(team=team, name="Bad input", user=user,
                                           embedding_model=Model.objects.get(name="local-minilm"))
        return {"team": team, "dataset": dataset, "collection": collection,
                "write": api_token_create(team=team, user=user, name="bench-w", scope="write", days=1).secret,
                "ingest": api_token_create(team=team, user=user, name="bench-i", scope="ingest", days=1).secret}


def counts(ctx) -> dict:
    from apps.costs.models import UsageEvent
    from apps.evals.models import DatasetItem
    from apps.prompts.models import Prompt
    from apps.rag.models import Document

    return {"usage": UsageEvent.objects.filter(team=ctx["team"]).count(),
            "items": DatasetItem.objects.filter(dataset=ctx["dataset"]).count(),
            "documents": Document.objects.filter(collection=ctx["collection"]).count(),
            "prompts": Prompt.objects.filter(team=ctx["team"]).count()}


def bad_strings() -> list[str]:
    return [f"a{NUL}b", NUL, f"x{SURROGATE}", "\udfff", f"{SURROGATE}{NUL}"]


def usage_batches(run: str) -> list[tuple[list, set]]:
    """(events, request ids that must be written): each batch mixes good events with bad ones."""
    now = datetime.now(UTC)
    recent = (now - timedelta(minutes=30)).isoformat()

    def good(i):
        return {"request_id": f"bad-{run}-{i}", "model": "gpt-4o-mini", "occurred_at": recent, "input_tokens": 10,
                "output_tokens": 2}

    bad_values = [("request_id", s) for s in bad_strings()]
    bad_values += [(f, s) for f in ("model", "feature", "tenant", "provider", "prompt_name", "error_type")
                   for s in bad_strings()]
    bad_values += [("team", v) for v in ("²", "١٢", "9" * 30, -1, True, [1], {"a": 1})]
    bad_values += [("occurred_at", v) for v in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                                 "1900-01-01T00:00:00Z", (now + timedelta(hours=1)).isoformat(),
                                                 1e30, -1e30, "yesterday", float("nan"))]
    bad_values += [(f, v) for f in ("input_tokens", "output_tokens", "latency_ms", "prompt_version")
                   for v in (-1, 2**63, 1.5, "12", float("inf"), [1])]
    bad_values += [("tenant", [[[[[["deep"]]]]]]), ("model", {"k" + NUL: 1}), ("messages", "prompt text")]
    batches = []
    for b in range(0, len(bad_values), 10):
        events, keep = [], set()
        for i, (field, value) in enumerate(bad_values[b:b + 10]):
            g = good(f"{b}-{i}-g")
            events.append(g)
            keep.add(g["request_id"])
            if value is None:
                continue
            events.append({**good(f"{b}-{i}-b"), field: value})
        batches.append((events, keep))
    return batches


def otlp_bodies() -> list[tuple[bytes, str, dict]]:
    shapes = ['{"resourceSpans":[{"scopeSpans":["x"]}]}', '{"resourceSpans":[{"scopeSpans":[{"spans":5}]}]}',
              '{"resourceSpans":[{"resource":{"attributes":5},"scopeSpans":[]}]}', '{"resourceSpans":[5]}',
              '{"resourceSpans":"x"}', "[]", "null", "[" * 200_000, '{"resourceSpans":[{"scopeSpans":{}}]}']

    def span(attr_value):
        return json.dumps({"resourceSpans": [{"resource": {"attributes": [
            {"key": "portal.team", "value": {"stringValue": TEAM}}]}, "scopeSpans": [{"spans": [
                {"traceId": uuid.uuid4().hex, "spanId": "01", "attributes": [
                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
                    {"key": "gen_ai.usage.input_tokens", "value": attr_value}]}]}]}]})

    bodies = [(s.encode(), "application/json", {}) for s in shapes]
    bodies += [(span(v).encode(), "application/json", {}) for v in (
        {"arrayValue": [1]}, {"doubleValue": float("inf")}, {"intValue": "9" * 40}, {"stringValue": NUL},
        {"kvlistValue": 5}, 5, None, {"intValue": {"x": 1}})]
    bodies += [(b"\xff\xff\xff", "application/x-protobuf", {}), (b"\x0a\x05garbage", "application/x-protobuf", {}),
               (gzip.compress(b" " * (64 * 1024 * 1024)), "application/json", {"Content-Encoding": "gzip"}),
               (b"not gzip", "application/json", {"Content-Encoding": "gzip"}),
               (b"{}", "application/json", {"Content-Encoding": "br"})]
    return bodies


def run() -> dict:
    setup(DATABASE)
    ctx = prepare()
    port = free_port()
    env = {**os.environ, "DEBUG": "false", "LOG_LEVEL": "ERROR", "ALLOWED_HOSTS": "127.0.0.1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "portal.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--timeout", "120", "--log-level", "error"],
        cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stats: dict[str, dict] = defaultdict(lambda: {"tries": 0, "5xx": 0, "partial_writes": 0, "statuses": set()})
    examples: list[str] = []
    run_id = uuid.uuid4().hex[:8]
    started = time.perf_counter()
    try:
        _wait_for(port)

        def send(family, method, path, body=None, content_type="application/json", token="write", headers=None,
                 must_not_write=(), expect=None):
            before = counts(ctx) if must_not_write else None
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=180)
            hdrs = {"Authorization": f"Bearer {ctx[token]}", **(headers or {})}
            if body is not None:
                hdrs["Content-Type"] = content_type
                if isinstance(body, str):
                    body = body.encode("utf-8", "surrogatepass")
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # answered (413) before the body ended
                conn.request(method, path, body=body, headers=hdrs)
            try:
                response = conn.getresponse()
                status, payload = response.status, response.read()
            except (ConnectionError, http.client.HTTPException):
                status, payload = 499, b""  # closed without an answer: counted apart, not as a 5xx
            conn.close()
            s = stats[family]
            s["tries"] += 1
            s["statuses"].add(status)
            if status >= 500:
                s["5xx"] += 1
                examples.append(f"{family}: {method} {path[:80]} -> {status}")
            if must_not_write and status >= 400:
                after = counts(ctx)
                if any(after[k] != before[k] for k in must_not_write):
                    s["partial_writes"] += 1
                    examples.append(f"{family}: {path[:80]} refused but wrote {before} -> {after}")
            if expect is not None:
                expect(s, status, payload)
            return status, payload

        # 1. Query filters, path segments and offsets on list endpoints.
        lists = ["/api/v1/usage/summary?feature={v}", "/api/v1/usage/summary?team={v}", "/api/v1/llm/models?kind={v}",
                 "/api/v1/audit/events?actor={v}", "/api/v1/use-cases?q={v}", "/api/v1/prompts?q={v}",
                 "/api/v1/prompts/{v}", "/api/v1/evals/datasets?offset={v}", "/api/v1/use-cases?offset={v}",
                 "/api/v1/prompts?offset={v}", f"/api/v1/rag/collections/{ctx['collection'].pk}/documents?offset={{v}}",
                 "/api/v1/usage/summary?from={v}"]
        values = ["%00", "a%00b", "%ED%A0%80", "%C2%B2", "-1", "-99999999999999999999", "99999999999999999999999",
                  quote("0001-01-01T00:00:00+14:00"), "%FF%FE"]
        for template in lists:
            for value in values:
                send("query filters and offsets", "GET", template.format(v=value))
        # 2. JSON bodies parsed by the API (prompts, datasets, collections, render).
        for text in bad_strings():
            for body in ({"name": f"bench/x{text}", "team": TEAM, "version": {"template": "Hi"}},
                         {"name": "bench/ok", "team": TEAM, "description": text},
                         {"name": "bench/ok2", "team": TEAM, "version": {"template": "Hi", "config": {text: 1}}}):
                send("JSON bodies", "POST", "/api/v1/prompts",
                     json.dumps(body, ensure_ascii=True), must_not_write=("prompts",))
            send("JSON bodies", "POST", "/api/v1/evals/datasets",
                 json.dumps({"team": TEAM, "name": f"bench/d{text}"}), must_not_write=("items",))
            send("JSON bodies", "POST", "/api/v1/rag/collections",
                 json.dumps({"team": TEAM, "name": f"C{text}"}), must_not_write=("documents",))
        send("JSON bodies", "POST", "/api/v1/prompts", "[" * 200_000, must_not_write=("prompts",))
        send("JSON bodies", "POST", "/api/v1/prompts", b"x" * (50 * 1024 * 1024), must_not_write=("prompts",))
        send("JSON bodies", "POST", "/api/v1/evals/datasets", b'{"team": 1e999999}', must_not_write=("items",))
        # 3. Usage batches: every bad event refused alone, every good one written.
        for events, keep in usage_batches(run_id):
            status, payload = send("usage batches", "POST", "/api/v1/usage",
                                   json.dumps({"events": events}, ensure_ascii=True), token="ingest")
            from apps.costs.models import UsageEvent

            stored = set(UsageEvent.objects.filter(request_id__startswith=f"bad-{run_id}-")
                         .values_list("request_id", flat=True))
            written_bad = {r for r in stored if r.endswith("-b")}
            lost_good = keep - stored
            if status == 200 and (written_bad or lost_good):
                stats["usage batches"]["partial_writes"] += 1
                examples.append(f"usage: wrote bad {sorted(written_bad)[:3]} / lost good {sorted(lost_good)[:3]}")
        for body in ("[" * 200_000, b"x" * (50 * 1024 * 1024), '{"events": 5}', "nope"):
            send("usage batches", "POST", "/api/v1/usage", body, token="ingest", must_not_write=("usage",))
        for text in bad_strings():
            send("usage outcomes", "POST", "/api/v1/usage/outcomes", json.dumps(
                {"outcomes": [{"request_id": text, "outcome": "success"}, {"request_id": "x", "outcome": text}]},
                ensure_ascii=True), token="ingest")
        send("usage outcomes", "POST", "/api/v1/usage/outcomes", "[" * 200_000, token="ingest")
        # 4. OTLP: envelopes of the wrong shape, odd spans, broken protobuf, gzip bombs.
        for body, content_type, headers in otlp_bodies():
            before = counts(ctx)
            status, payload = send("OTLP traces", "POST", "/api/v1/otlp/v1/traces", body, content_type,
                                   token="ingest", headers=headers, must_not_write=("usage",))
            if status == 200 and counts(ctx)["usage"] != before["usage"]:
                stats["OTLP traces"]["partial_writes"] += 1  # these spans are all bad: none may land
                examples.append(f"OTLP: a bad span was written: {body[:80]!r}")
        # 5. Dataset imports (CSV and JSONL) through the API.
        pk = ctx["dataset"].pk
        for text in bad_strings():
            jsonl = json.dumps({"inputs": {"question": f"q{text}"}}, ensure_ascii=True) + "\n"
            send("dataset imports", "POST", f"/api/v1/evals/datasets/{pk}/import?format=jsonl", jsonl,
                 "application/x-ndjson", must_not_write=("items",))
            send("dataset imports", "POST", f"/api/v1/evals/datasets/{pk}/import?format=csv",
                 f"question,expected\nq{text},e\n", "text/csv", must_not_write=("items",))
        for body, fmt in (('{"inputs": ' + "[" * 200_000 + "\n", "jsonl"), (b"\xff\xfe\x00bad", "csv"),
                          (b"question\n" + b"x" * (50 * 1024 * 1024), "csv")):
            send("dataset imports", "POST", f"/api/v1/evals/datasets/{pk}/import?format={fmt}", body,
                 "text/csv" if fmt == "csv" else "application/x-ndjson", must_not_write=("items",))
        # 6. RAG uploads that are not what their name says.
        cid = ctx["collection"].pk
        for name, content in (("fake.pdf", b"PK\x03\x04zip"), ("fake.pdf", b"<html>no</html>"),
                              ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00"), ("nul\x00.txt", b"hello"),
                              ("x.exe", b"MZ")):
            boundary = uuid.uuid4().hex
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                    f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
            send("RAG uploads", "POST", f"/api/v1/rag/collections/{cid}/documents", body,
                 f"multipart/form-data; boundary={boundary}", must_not_write=("documents",))
        # 7. Templates that grow: saved, then rendered.
        attacks = ["{{ 'a'|center(10**8) }}", "{{ 'a'.ljust(10**8) }}", "{{ '%100000000s' % 'a' }}",
                   "{{ '{:>100000000}'.format(1) }}", "{% set a = 'a' * 200000 %}{{ ([a] * 1000)|join }}",
                   "{% set a = 'a' * 200000 %}{% for i in range(100000) %}{{ a }}{% endfor %}",
                   "{{ lipsum(100000, max=1000) }}", "{{ ((10**100)**100)**100 }}"]
        for n, template in enumerate(attacks):
            name = f"bench/attack-{run_id}-{n}"
            status, _ = send("template renders", "POST", "/api/v1/prompts", json.dumps(
                {"name": name, "team": TEAM, "version": {"template": template}}))
            if status == 201:
                send("template renders", "POST", f"/api/v1/prompts/{name}/render",
                     json.dumps({"version": 1}))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    families = {family: {**s, "statuses": sorted(s["statuses"])} for family, s in stats.items()}
    return {"families": families, "tries": sum(s["tries"] for s in families.values()),
            "5xx": sum(s["5xx"] for s in families.values()),
            "partial_writes": sum(s["partial_writes"] for s in families.values()),
            "seconds": round(time.perf_counter() - started, 1), "examples": examples[:20]}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
