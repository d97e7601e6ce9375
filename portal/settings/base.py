"""Settings shared by every environment. Every variable read here is listed in docs/configuration.md."""

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

from apps.core.env import envbool, envfloat, envint, envlist, envsecret, envstr
from portal import embedded

BASE_DIR = Path(__file__).resolve().parent.parent.parent

DEBUG = envbool("DEBUG", False)
SECRET_KEY = envsecret("SECRET_KEY")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = envstr("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",  # runserver too serves static files through whitenoise (hashed, cached)
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_htmx",
    "ninja",  # the API docs page from ninja's own static files, not a CDN (and under the CSP)
    "template_partials",
    "guardian",
    "portal",
    "apps.core",
    "apps.accounts",
    "apps.audit",
    "apps.notifications",
    "apps.guardrails",
    "apps.costs",
    "apps.llm",
    "apps.prompts",
    "apps.gateway",
    "apps.evals",
    "apps.rag",
    "apps.reviews",
    "apps.redteam",
    "apps.experiments",
    "apps.incidents",
    "apps.slos",
    "apps.scorecards",
]


MIDDLEWARE = [
    "apps.core.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "portal.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.core.middleware.ActorContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "apps.core.middleware.HtmxVaryMiddleware",
    "apps.core.middleware.UnstorableInputMiddleware",  # last: its 400 page still gets the headers above
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.navigation",
            ],
        },
    },
]


def parse_database_url(url: str) -> dict:
    """postgresql://user:pass@host:port/name?host=/socket/dir&sslmode=... -> Django DATABASES entry."""
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql", "pgsql"):
        raise ImproperlyConfigured(f"DATABASE_URL must be a PostgreSQL URL, got scheme {parsed.scheme!r}")
    query = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    host = query.pop("host", None) or parsed.hostname or ""
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parsed.path.lstrip("/")) or "portal",
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": host,
        "PORT": str(parsed.port or ""),
        **connection_limits(query),
    }


def connection_limits(options: dict) -> dict:
    """How many PostgreSQL connections one process may hold (docs/operations.md, "Database connections").

    With DATABASE_POOL_MAX_SIZE > 0 (the default) each process borrows from its own psycopg pool for the
    length of a request or task and never holds more than that many, however many threads it runs
    (runserver's thread per request, gunicorn's gthreads, a threaded Celery pool). With 0 there is no pool
    (e.g. behind pgbouncer in transaction mode) and DATABASE_CONN_MAX_AGE applies; its default 0 closes the
    connection at the end of each request, so an idle keep-alive thread never sits on one.
    """
    pool_size = envint("DATABASE_POOL_MAX_SIZE", 8)
    if pool_size < 0:
        raise ImproperlyConfigured(f"DATABASE_POOL_MAX_SIZE must be 0 (no pool) or more, got {pool_size}")
    if pool_size == 0:
        return {"CONN_MAX_AGE": envint("DATABASE_CONN_MAX_AGE", 0), "CONN_HEALTH_CHECKS": True, "OPTIONS": options}
    pool = {
        "min_size": 1,
        "max_size": pool_size,
        "timeout": envfloat("DATABASE_POOL_TIMEOUT", 10.0),  # seconds a request waits for a free connection
        "max_idle": 60,  # connections above min_size idle this long are closed
    }
    return {"CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False, "OPTIONS": {**options, "pool": pool}}


def _database_url() -> str:
    url = envstr("DATABASE_URL")
    if url:
        return url

    try:
        return embedded.database_url()
    except ImportError as exc:  # an image built without the `local` extra and no DATABASE_URL given
        raise ImproperlyConfigured(
            "DATABASE_URL is not set and the embedded PostgreSQL (pgserver, the 'local' extra) is not installed"
        ) from exc


def _redis_url() -> str:
    url = envstr("REDIS_URL")
    if url:
        return url

    return embedded.redis_url()


DATABASE_URL = _database_url()
REDIS_URL = _redis_url()
DATABASES = {"default": parse_database_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def redis_url_with_db(redis_url: str, db: int) -> str:
    """The same server, another logical database."""
    parsed = urlparse(redis_url)
    if parsed.scheme == "unix":
        return f"unix://{parsed.path}?db={db}"  # urlunparse would drop the empty authority
    return parsed._replace(path=f"/{db}").geturl()


def celery_broker_url(redis_url: str) -> str:
    """redis-py says unix:///path?db=N; kombu says redis+socket:///path?virtual_host=N."""
    parsed = urlparse(redis_url)
    if parsed.scheme == "unix":
        db = parse_qs(parsed.query).get("db", ["0"])[-1]
        return f"redis+socket://{parsed.path}?virtual_host={db}"
    return redis_url


CACHES = {
    "default": {
        "BACKEND": "apps.core.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": envstr("CACHE_KEY_PREFIX", "portal"),
    }
}

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row; anonymous users may do nothing
GUARDIAN_MONKEY_PATCH_USER = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Throttling of failed sign-ins and invalid API tokens (apps/accounts/throttle.py, ADR 0090).
LOGIN_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5)  # per account
LOGIN_ADDRESS_FAILURE_LIMIT = envint("LOGIN_ADDRESS_FAILURE_LIMIT", 20)  # per client address, any accounts
LOGIN_LOCKOUT_SECONDS = envint("LOGIN_LOCKOUT_SECONDS", 15 * 60)
API_TOKEN_FAILURE_LIMIT = envint("API_TOKEN_FAILURE_LIMIT", 20)  # per client address
API_TOKEN_LOCKOUT_SECONDS = envint("API_TOKEN_LOCKOUT_SECONDS", 5 * 60)
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Collected files with hashed names (cached for a year, immutable) and compressed copies, in every environment:
# `make run` collects at start-up, the image at build (ADR 0008).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "portal.staticstorage.PortalStaticFilesStorage"},
}
WHITENOISE_AUTOREFRESH = False
WHITENOISE_ROOT = BASE_DIR / "portal" / "public"  # served at the site's root: /favicon.ico
MEDIA_ROOT = Path(envstr("MEDIA_ROOT", str(BASE_DIR / ".portal" / "media")))
MEDIA_URL = "media/"
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# Security: safe by default; dev.py relaxes what only matters over plain http on localhost.
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", True)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", True)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = envint("SESSION_COOKIE_AGE", 60 * 60 * 12)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (portal/csp.py, ADR 0008): scripts only from our static files, no inline script, no eval.
# plotly.js adds its rules to one empty <style> through the CSSOM: the hash below is that of the empty string,
# so an empty style element is allowed and any style element with content is not. Style attributes stay allowed
# (plotly and htmx set them; they cannot run code).
CONTENT_SECURITY_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"],
    "style-src-attr": ["'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
CSRF_FAILURE_VIEW = "portal.views.csrf_failure"  # the portal's 403 page, not Django's bare one

# Email: console in dev; SMTP settings from the environment in production.
EMAIL_BACKEND = envstr("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = envstr("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = envsecret("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "genai-portal@localhost")

# Celery: Redis broker, named queues (portal/queues.py), JSON only, results in our own rows.
CELERY_BROKER_URL = celery_broker_url(envstr("CELERY_BROKER_URL") or REDIS_URL)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = False
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Models: secrets of providers are encrypted with this key (Fernet; derived from SECRET_KEY if unset).
PORTAL_ENCRYPTION_KEY = envsecret("PORTAL_ENCRYPTION_KEY")
PORTAL_DEFAULT_CHAT_MODEL = envstr("PORTAL_DEFAULT_CHAT_MODEL", "local-extractive")
PORTAL_DEFAULT_EMBEDDING_MODEL = envstr("PORTAL_DEFAULT_EMBEDDING_MODEL", "local-minilm")
PORTAL_WORKER_HEARTBEAT_TTL = envint("PORTAL_WORKER_HEARTBEAT_TTL", 30)
# Load the offline embedding model when web and worker processes start (portal/warmup.py); the launcher and
# production turn it on, tests leave it off.
PORTAL_WARM_MODELS = envbool("PORTAL_WARM_MODELS", False)
# A prefork child that warms the model reports up later than Celery's default 4 s, which would kill it.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = 120.0
# `make run` sets a new id on each start: /readyz then counts only heartbeats that carry it (portal/celery.py).
PORTAL_RUN_ID = envstr("PORTAL_RUN_ID", "") or ""

LOG_LEVEL = envstr("LOG_LEVEL", "INFO")
LOG_FORMAT = envstr("LOG_FORMAT", "json")
LOG_FORMATS = ("json", "text")
if LOG_FORMAT not in LOG_FORMATS:
    raise ImproperlyConfigured(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_context": {"()": "apps.core.logging.RequestContextFilter"}},
    "formatters": {
        "json": {"()": "apps.core.logging.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "pgserver": {"level": "WARNING"},
    },
}
METRICS_TOKEN = envsecret("METRICS_TOKEN")
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
]

# Team webhooks may POST to private, loopback and link-local addresses (a receiver inside the network).
WEBHOOKS_ALLOW_PRIVATE_NETWORKS = envbool("WEBHOOKS_ALLOW_PRIVATE_NETWORKS", False)

# RAG (docs/rag.md): upload limits, indexing batches, the stalled-job sweep, BM25 pruning, LLM rerank.
RAG_MAX_DOCUMENT_BYTES = envint("RAG_MAX_DOCUMENT_BYTES", 10 * 1024 * 1024)
RAG_MAX_IMPORT_BYTES = envint("RAG_MAX_IMPORT_BYTES", 100 * 1024 * 1024)
RAG_EMBED_BATCH = envint("RAG_EMBED_BATCH", 64)
RAG_CLAIM_BATCH = envint("RAG_CLAIM_BATCH", 256)
RAG_JOB_STALE_SECONDS = envint("RAG_JOB_STALE_SECONDS", 300)
RAG_BM25_TERM_POSTINGS = envint("RAG_BM25_TERM_POSTINGS", 2000)
RAG_LLM_RERANK = envbool("RAG_LLM_RERANK", True)
RAG_PREPARED_STATEMENTS = envbool("RAG_PREPARED_STATEMENTS", True)  # the query legs' plans kept per connection
# The BEIR folder (SciFact) rag_import_beir / rag_eval read when --dir is not given; empty: none.
SCIFACT_DIR = envstr("SCIFACT_DIR", "")

# Model calls (docs/models.md): retry backoff, embeddings batching, the offline chat model's ranking.
LLM_RETRY_BASE_SECONDS = envfloat("LLM_RETRY_BASE_SECONDS", 0.5)
LLM_RETRY_CAP_SECONDS = envfloat("LLM_RETRY_CAP_SECONDS", 20.0)
LLM_RETRY_AFTER_MAX_SECONDS = envfloat("LLM_RETRY_AFTER_MAX_SECONDS", 60.0)
LLM_EMBED_BATCH_SIZE = envint("LLM_EMBED_BATCH_SIZE", 256)
LLM_LOCAL_CHAT_SEMANTIC = envbool("LLM_LOCAL_CHAT_SEMANTIC", False)
# The offline MiniLM (apps/llm/offline/embeddings.py, ADR 0044, 0045): auto = ONNX Runtime's fused graph,
# exported on first use into LLM_LOCAL_GRAPH_DIR; torch (bf16 autocast where the CPU has it) without it.
LLM_LOCAL_EMBED_PRECISION = envstr("LLM_LOCAL_EMBED_PRECISION", "auto")
LLM_LOCAL_TORCH_THREADS = envint("LLM_LOCAL_TORCH_THREADS", 0)  # 0: 1 in web processes, one per core elsewhere
LLM_LOCAL_GRAPH_DIR = envstr("LLM_LOCAL_GRAPH_DIR", "") or str(embedded.data_path() / "models")
# How often a process checks the routing stamp in Redis (aliases, deployments, models, prices cached in process).
LLM_ROUTES_CHECK_SECONDS = envfloat("LLM_ROUTES_CHECK_SECONDS", 0.5)
# Circuit breakers per alias deployment (apps/llm/breakers.py): failure ratio over a sliding window, cooldown.
LLM_BREAKER_WINDOW_SECONDS = envint("LLM_BREAKER_WINDOW_SECONDS", 10)
LLM_BREAKER_MIN_REQUESTS = envint("LLM_BREAKER_MIN_REQUESTS", 5)
LLM_BREAKER_FAILURE_RATIO = envfloat("LLM_BREAKER_FAILURE_RATIO", 0.5)
LLM_BREAKER_COOLDOWN_SECONDS = envfloat("LLM_BREAKER_COOLDOWN_SECONDS", 5.0)
LLM_INFLIGHT_TTL_SECONDS = envint("LLM_INFLIGHT_TTL_SECONDS", 660)
# Live health per deployment (apps/llm/health.py): calls, error rate, p50/p95 over the last N minutes.
LLM_HEALTH_WINDOW_MINUTES = envint("LLM_HEALTH_WINDOW_MINUTES", 15)

# The LLM gateway (docs/gateway.md): the /v1/ front door and the writer of its recorded calls.
GATEWAY_MAX_BODY_BYTES = envint("GATEWAY_MAX_BODY_BYTES", 4 * 1024 * 1024)
# Where the portal's own processes reach the front door as a client (red-team campaigns on a gateway key).
GATEWAY_BASE_URL = envstr("GATEWAY_BASE_URL", f"http://127.0.0.1:{envint('GATEWAY_PORT', 8001)}/v1").rstrip("/")
# How long a process trusts an admission guard's answer (use case active?) before asking again.
GATEWAY_ADMISSION_TTL_SECONDS = envfloat("GATEWAY_ADMISSION_TTL_SECONDS", 1.0)
GATEWAY_RECORDER_BATCH = envint("GATEWAY_RECORDER_BATCH", 500)
# After a batch shorter than GATEWAY_RECORDER_BATCH the writer waits this long, so the next batch gathers more rows.
GATEWAY_RECORDER_LINGER_MS = envint("GATEWAY_RECORDER_LINGER_MS", 200)
# A record read by a writer that has not acknowledged it for this long is taken over by another writer.
GATEWAY_RECORDER_CLAIM_IDLE_MS = envint("GATEWAY_RECORDER_CLAIM_IDLE_MS", 30_000)
# Budgets before the call (apps/gateway/budgets.py, ADR 0072): output tokens a reservation assumes when a request
# has no max_tokens (at most the model's own maximum), the margin on the input estimate, how long a reservation
# may stay unsettled before the sweeper releases it, and how often the recorder sweeps and re-reads the counters.
GATEWAY_BUDGET_DEFAULT_MAX_TOKENS = envint("GATEWAY_BUDGET_DEFAULT_MAX_TOKENS", 4096)
# The input estimate is the portal's (cl100k-like); a provider's tokenizer may count more: held on top of it.
GATEWAY_BUDGET_INPUT_MARGIN = envfloat("GATEWAY_BUDGET_INPUT_MARGIN", 0.2)
GATEWAY_BUDGET_RESERVATION_TTL_SECONDS = envint("GATEWAY_BUDGET_RESERVATION_TTL_SECONDS", 900)
GATEWAY_BUDGET_SYNC_SECONDS = envfloat("GATEWAY_BUDGET_SYNC_SECONDS", 5.0)
# The response cache (opt-in per key or request; ADR 0074): how long an answer is kept when the key sets no
# TTL, and the largest answer stored (bigger ones are answered, not cached).
GATEWAY_CACHE_TTL_SECONDS = envint("GATEWAY_CACHE_TTL_SECONDS", 3600)
GATEWAY_CACHE_MAX_ENTRY_BYTES = envint("GATEWAY_CACHE_MAX_ENTRY_BYTES", 1024 * 1024)
# Sampled bodies of keys that opted in (store_bodies), PII-redacted, are deleted after this many days.
GATEWAY_BODY_RETENTION_DAYS = envint("GATEWAY_BODY_RETENTION_DAYS", 30)
# Per-minute SLI counts per use case (apps/gateway/sli.py) are kept this long (3 days + 8 h: the SLOs' 3-day ticket
# window stays exact); per-hour counts, which windows of days sum, this many days (the longest SLO window is 90).
GATEWAY_SLI_MINUTE_RETENTION_HOURS = envint("GATEWAY_SLI_MINUTE_RETENTION_HOURS", 80)
GATEWAY_SLI_HOUR_RETENTION_DAYS = envint("GATEWAY_SLI_HOUR_RETENTION_DAYS", 95)
# SLO burn-rate alerts (apps/slos): a window pair fires only with at least this many valid events in its long
# window, so one failed call of a quiet use case does not page anybody.
SLO_ALERT_MIN_EVENTS = envint("SLO_ALERT_MIN_EVENTS", 10)
# Guardrails on streamed answers: text reaches the client only once this many characters follow it, so PII or a
# secret split across deltas is found (and redacted or blocked) first (apps/gateway/guard.py).
GATEWAY_GUARD_HOLDBACK_CHARS = envint("GATEWAY_GUARD_HOLDBACK_CHARS", 128)
# Days before a gateway key's expiry when its creator and the team's owners are told (once per threshold).
GATEWAY_KEY_EXPIRY_NOTICE_DAYS = envlist("GATEWAY_KEY_EXPIRY_NOTICE_DAYS", ["14", "3", "1"])
# OpenTelemetry GenAI spans of gateway calls (apps/gateway/tracing.py, ADR 0078): on when this switch is on and an
# exporter is configured by the standard variables; the SDK reads the rest (headers, compression, service name).
GATEWAY_OTEL_TRACES = envbool("GATEWAY_OTEL_TRACES", True)
OTEL_TRACES_EXPORTER = envstr("OTEL_TRACES_EXPORTER", "").lower()
OTEL_EXPORTER_OTLP_ENDPOINT = envstr("OTEL_EXPORTER_OTLP_ENDPOINT", "")
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = envstr("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")

# Audit chain (docs/audit.md): with a key, new events are sealed with HMAC-SHA256 (hash version 3), so
# whoever can write the database still cannot rewrite the chain consistently without the key.
AUDIT_HMAC_KEY = envsecret("AUDIT_HMAC_KEY") or ""

# --- red team (docs/redteam.md) ---
REDTEAM_DEFAULT_CONCURRENCY = envint("REDTEAM_DEFAULT_CONCURRENCY", 20)  # attacks in flight per campaign
REDTEAM_MAX_ATTACKS = envint("REDTEAM_MAX_ATTACKS", 20_000)  # generated attacks per campaign
REDTEAM_MAX_ATTEMPTS = envint("REDTEAM_MAX_ATTEMPTS", 3)  # tries per attack on retryable model errors
REDTEAM_STALL_SECONDS = envint("REDTEAM_STALL_SECONDS", 120)  # no progress this long: the beat job resumes it
REDTEAM_MAX_OUTPUT_TOKENS = envint("REDTEAM_MAX_OUTPUT_TOKENS", 512)  # max_tokens of each attack's call
