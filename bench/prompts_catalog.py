"""The catalog page with 10,000 prompts and 100,000 versions: server time and query count.

Generates the data once in `portal_bench` (bulk inserts; versions stay immutable: only INSERTs), then
times `GET /prompts/` through Django's full request stack (Client, DEBUG off, no network) for an admin
(sees every prompt) and for an engineer (sees their team's), with the default sort, a full-text search,
a label filter, and page sizes 25 and 100. The query count must not grow with the page size.

Usage: python -m bench.prompts_catalog [--requests 30]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time

from bench.common import setup_django, summary_ms, use_bench_database

PROMPTS = 10_000
VERSIONS_PER_PROMPT = 10
TEAMS = 10
WORDS = ["refund", "order", "shipping", "invoice", "account", "password", "delivery", "warranty", "subscription",
         "billing", "escalate", "summarise", "classify", "translate", "extract", "answer", "cite", "rewrite", "rank",
         "greet"]


def _template(i: int, v: int) -> str:
    a, b, c = WORDS[i % len(WORDS)], WORDS[(i // 7) % len(WORDS)], WORDS[(i + v) % len(WORDS)]
    return (f"You help customers with {a} and {b} questions (revision {v}).\n"
            f"Use the context to {c} the request.\nContext:\n{{{{ context }}}}\n\n"
            "<question>{{ question }}</question>")


def generate() -> dict:
    """Idempotent: creates the bench catalog unless it is already there."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from apps.accounts.models import Membership, Role, Team
    from apps.prompts.models import Label, Prompt, PromptVersion

    User = get_user_model()
    admin, _ = User.objects.get_or_create(username="bench-admin", defaults={"is_staff": True, "is_superuser": True})
    engineer, _ = User.objects.get_or_create(username="bench-catalog-engineer")
    teams = []
    for t in range(TEAMS):
        team, _ = Team.objects.get_or_create(slug=f"catalog-{t}", defaults={"name": f"Catalog team {t}"})
        teams.append(team)
    Membership.objects.get_or_create(team=teams[0], user=engineer, defaults={"role": Role.ENGINEER})
    existing = Prompt.objects.filter(name__startswith="catalog/").count()
    if existing >= PROMPTS:
        return {"admin": admin, "engineer": engineer, "generated_s": 0.0}
    started = time.monotonic()
    now = timezone.now()
    with transaction.atomic():
        Prompt.objects.filter(name__startswith="catalog/").delete()
        prompts = Prompt.objects.bulk_create([
            Prompt(team=teams[i % TEAMS], name=f"catalog/{WORDS[i % len(WORDS)]}/prompt-{i:05d}",
                   description=f"Handles {WORDS[i % len(WORDS)]} requests for product line {i % 37}.",
                   tags=[WORDS[i % len(WORDS)], f"line-{i % 37}"], latest_version_number=VERSIONS_PER_PROMPT,
                   updated_at=now - timezone.timedelta(minutes=i), updated_by_label="bench")
            for i in range(PROMPTS)
        ], batch_size=2000)
        versions = []
        for i, prompt in enumerate(prompts):
            for v in range(1, VERSIONS_PER_PROMPT + 1):
                template = _template(i, v)
                versions.append(PromptVersion(
                    prompt=prompt, number=v, template=template, variables=["context", "question"],
                    config={"temperature": 0.2}, commit_message=f"revision {v}", author_label="bench",
                    content_hash=hashlib.sha256(template.encode()).hexdigest()))
        PromptVersion.objects.bulk_create(versions, batch_size=5000)
        latest = {(v.prompt_id, v.number): v for v in versions}
        labels = [Label(prompt=p, name="latest", version=latest[(p.pk, VERSIONS_PER_PROMPT)], updated_by_label="bench")
                  for p in prompts]
        labels += [Label(prompt=p, name="production", version=latest[(p.pk, VERSIONS_PER_PROMPT - 1)],
                         updated_by_label="bench") for i, p in enumerate(prompts) if i % 10 < 7]
        Label.objects.bulk_create(labels, batch_size=5000)
        with connection.cursor() as cursor:
            cursor.execute("""
                UPDATE prompts_prompt p SET search_vector =
                    setweight(to_tsvector('simple', p.name || ' ' || translate(p.name, '/-_.', '    ')), 'A')
                    || setweight(to_tsvector('english', p.description || ' ' || array_to_string(p.tags, ' ')), 'B')
                    || setweight(to_tsvector('english', v.template), 'C')
                FROM prompts_promptversion v
                WHERE v.prompt_id = p.id AND v.number = p.latest_version_number AND p.name LIKE 'catalog/%%'
            """)
            cursor.execute("ANALYZE prompts_prompt; ANALYZE prompts_promptversion; ANALYZE prompts_label")
    return {"admin": admin, "engineer": engineer, "generated_s": round(time.monotonic() - started, 1)}


def _rows_and_matches(html: str) -> dict:
    import re

    found = re.search(r"([\d,]+) prompts?</span>", html)
    return {"rows": html.count('class="mono">catalog/'), "matches": int(found.group(1).replace(",", "")) if found else None}


def _time_case(client, params: dict, requests: int, connection) -> dict:
    headers = {"HTTP_HX_REQUEST": "true"} if params.pop("_htmx", False) else {}

    def get():
        return client.get("/prompts/", params, **headers)

    for _ in range(3):
        assert get().status_code == 200
    queries: list[str] = []

    def count(execute, sql, *args):
        queries.append(sql)
        return execute(sql, *args)

    with connection.execute_wrapper(count):
        response = get()
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        get()
        samples.append(time.perf_counter() - started)
    return {**summary_ms(samples), "queries": len(queries), **_rows_and_matches(response.content.decode())}


def run(requests: int = 30) -> dict:
    use_bench_database()
    setup_django()
    from django.conf import settings
    from django.db import connection
    from django.test import Client

    assert settings.DATABASES["default"]["NAME"] == "portal_bench", "refusing to write to the dev database"
    from apps.prompts.models import Prompt, PromptVersion

    data = generate()
    results = {"prompts": Prompt.objects.count(), "versions": PromptVersion.objects.count(),
               "generated_s": data["generated_s"]}
    cases = {
        "default (last change), 25/page": {},
        "default, 100/page": {"per_page": 100},
        "search 'refund warranty'": {"q": "refund warranty"},
        "label=production, sort by name": {"label": "production", "sort": "name"},
        "tag filter": {"tag": "billing"},
        "htmx fragment while typing 'refu'": {"q": "refu", "_htmx": True},
    }
    for who in ("admin", "engineer"):
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(data[who])
        for name, params in cases.items():
            results[f"{who}: {name}"] = _time_case(client, dict(params), requests, connection)
    q25 = results["admin: default (last change), 25/page"]["queries"]
    q100 = results["admin: default, 100/page"]["queries"]
    results["query_count_independent_of_page_size"] = q25 == q100
    results["goal"] = "server time < 150 ms; queries constant in page size"
    return results


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args(argv)
    import json

    print(json.dumps(run(args.requests), indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
