"""The test suite: the same embedded PostgreSQL and Redis as dev, separate databases."""

import os

from .base import *  # noqa: F403

DEBUG = False
PORTAL_WARM_MODELS = False  # tests load the model only where they use it
SECRET_KEY = "test-only-secret-key"
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; tests only
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
ALLOWED_HOSTS = ["*"]

# Parallel runs on one machine (several checkouts or sessions) get their own databases and Redis db.
# Each pytest-xdist worker (PYTEST_XDIST_WORKER gw0, gw1…; inherited by the processes a test starts) gets its
# own database suffix, Redis db (2, 3…) and key prefix, so the workers of `make test` never share state.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
_suffix = os.environ.get("PORTAL_TEST_SUFFIX", "") + (f"_{_worker}" if _worker else "")
DATABASES["default"]["TEST"] = {"NAME": f"test_portal{_suffix}"}  # noqa: F405
_redis_db = int(os.environ.get("PORTAL_TEST_REDIS_DB", "1")) + (1 + int(_worker[2:]) if _worker else 0)
REDIS_URL = redis_url_with_db(REDIS_URL, _redis_db)  # noqa: F405
CELERY_BROKER_URL = celery_broker_url(REDIS_URL)  # noqa: F405
CACHES["default"]["LOCATION"] = REDIS_URL  # noqa: F405
CACHES["default"]["KEY_PREFIX"] = f"test{_suffix}"  # noqa: F405
LOG_FORMAT = "text"
LOGGING["handlers"]["console"]["formatter"] = "text"  # noqa: F405
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
MEDIA_ROOT = BASE_DIR / ".portal" / f"test-media{_suffix}"  # noqa: F405
STATIC_ROOT = BASE_DIR / ".portal" / f"test-static{_suffix}"  # noqa: F405  collected by the browser tests' server
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing one until then
# No pool and no persistent connections in the suite: live-server and worker threads must not keep
# connections past a test, and the test database is created under another name after settings load.
DATABASES["default"].update(CONN_MAX_AGE=0, CONN_HEALTH_CHECKS=True)  # noqa: F405
DATABASES["default"]["OPTIONS"].pop("pool", None)  # noqa: F405
# The suite never exports spans because of the environment it runs in (tests install their own exporters).
OTEL_TRACES_EXPORTER = OTEL_EXPORTER_OTLP_ENDPOINT = OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = ""
