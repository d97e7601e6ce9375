"""Settings shared by every environment. Every variable read here is listed in docs/configuration.md."""

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

from portal.env import envbool, envfloat, envint, envlist, envsecret, envstr

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
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_htmx",
    "template_partials",
    "guardian",
    "portal",
    "apps.accounts",
    "apps.audit",
    "apps.notifications",
    "apps.guardrails",
    "apps.costs",
    "apps.llm",
    "apps.prompts",
    "apps.evals",
    "apps.rag",
    "apps.reviews",
]


MIDDLEWARE = [
    "portal.middleware.RequestContextMiddleware",
    "portal.middleware.UnstorableInputMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "portal.middleware.ActorContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "portal.middleware.HtmxVaryMiddleware",
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
        "CONN_MAX_AGE": envint("DATABASE_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": query,
    }


def _database_url() -> str:
    url = envstr("DATABASE_URL")
    if url:
        return url
    from portal import embedded

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
    from portal import embedded

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
        "BACKEND": "portal.cache.RedisCache",
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
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_AUTOREFRESH = False  # production serves collected files; dev/test use finders below
STATICFILES_DIRS = [BASE_DIR / "static"]
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

LOG_LEVEL = envstr("LOG_LEVEL", "INFO")
LOG_FORMAT = envstr("LOG_FORMAT", "json")
LOG_FORMATS = ("json", "text")
if LOG_FORMAT not in LOG_FORMATS:
    raise ImproperlyConfigured(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_context": {"()": "portal.logging.RequestContextFilter"}},
    "formatters": {
        "json": {"()": "portal.logging.JsonFormatter"},
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
    "portal.staticfinders.VendorFinder",
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

# Model calls (docs/models.md): retry backoff, embeddings batching, the offline chat model's ranking.
LLM_RETRY_BASE_SECONDS = envfloat("LLM_RETRY_BASE_SECONDS", 0.5)
LLM_RETRY_CAP_SECONDS = envfloat("LLM_RETRY_CAP_SECONDS", 20.0)
LLM_RETRY_AFTER_MAX_SECONDS = envfloat("LLM_RETRY_AFTER_MAX_SECONDS", 60.0)
LLM_EMBED_BATCH_SIZE = envint("LLM_EMBED_BATCH_SIZE", 256)
LLM_LOCAL_CHAT_SEMANTIC = envbool("LLM_LOCAL_CHAT_SEMANTIC", False)

# Audit chain (docs/audit.md): with a key, new events are sealed with HMAC-SHA256 (hash version 3), so
# whoever can write the database still cannot rewrite the chain consistently without the key.
AUDIT_HMAC_KEY = envsecret("AUDIT_HMAC_KEY") or ""
