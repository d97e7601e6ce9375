"""Home page server time and query count, through Django's full request stack (no network)."""

from __future__ import annotations

import time

from bench.common import setup_django, summary_ms


def run(requests: int = 200) -> dict:
    setup_django()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from apps.core.request_context import acting_as
    from portal.demo import seed_demo_accounts

    with acting_as(None):
        people = seed_demo_accounts()["people"]
    results = {}
    for username in ("olivia", "admin"):
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(people[username])
        for _ in range(10):  # warm caches and connections
            assert client.get("/").status_code == 200
        with CaptureQueriesContext(connection) as queries:
            client.get("/")
        query_count = len(queries.captured_queries)
        samples = []
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get("/")
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200
        results[username] = {**summary_ms(samples), "queries": query_count}
    return results


if __name__ == "__main__":
    print(run())
