"""Where one prompt-resolve request's time goes, in-process (no network, no gunicorn): the whole request
through Django's WSGI handler, and its parts (token authentication, one cache read, the cached resolve).

Same database and settings as bench/prompts_resolve.py (`portal_bench`, production settings, DEBUG off).
Usage: python -m bench.resolve_breakdown [--requests 3000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time

from bench.common import use_bench_database
from bench.prompts_resolve import PATH, PROMPT, seed


def _per_call_ms(fn, n: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return round((time.perf_counter() - started) / n * 1000, 3)


def run(requests: int = 3000) -> dict:
    use_bench_database()
    os.environ.update(DJANGO_SETTINGS_MODULE="portal.settings.production",
                      SECRET_KEY="bench-only-secret-key-0123456789abcdef", SECURE_SSL_REDIRECT="false",
                      ALLOWED_HOSTS="127.0.0.1,localhost", CACHE_KEY_PREFIX="bench", LOG_LEVEL="WARNING",
                      DEBUG="false")
    from bench.common import setup_django

    setup_django()
    from django.conf import settings
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    assert settings.DATABASES["default"]["NAME"] == "portal_bench", "refusing to seed the dev database"
    ids = seed()
    from apps.accounts.auth import authenticate_token
    from apps.prompts.resolve import resolve_cached
    from portal.wsgi import application

    path, _, query = PATH.partition("?")

    def request() -> str:
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
                   "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1", "wsgi.input": io.BytesIO(b""),
                   "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "REMOTE_ADDR": "127.0.0.1",
                   "HTTP_AUTHORIZATION": f"Bearer {ids['token']}"}
        status = []
        body = application(environ, lambda s, headers, exc=None: status.append(s))
        b"".join(body)
        body.close()
        return status[0]

    for _ in range(200):  # warm the cache and the connection
        assert request().startswith("200")
    with CaptureQueriesContext(connection) as queries:
        request()
    return {
        "whole_request_ms": _per_call_ms(request, requests),
        "queries_per_warm_request": len(queries),
        "token_authentication_ms": _per_call_ms(lambda: authenticate_token(ids["token"]), requests),
        "one_cache_read_ms": _per_call_ms(lambda: cache.get("bench-missing-key"), requests),
        "cached_resolve_ms": _per_call_ms(lambda: resolve_cached(PROMPT, label="production"), requests),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    print(json.dumps(run(parser.parse_args().requests), indent=1))
