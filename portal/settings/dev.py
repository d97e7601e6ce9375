"""Local development: `make run`. DEBUG on, console email, a fixed dev-only secret key."""

from portal.env import envbool, envsecret, envstr

from .base import *  # noqa: F403

DEBUG = envbool("DEBUG", True)
# Links in e-mails point at the server `make run` started: its host and port unless SITE_URL says otherwise.
SITE_URL = envstr("SITE_URL") or f"http://{envstr('PORTAL_HOST', '127.0.0.1')}:{envstr('PORTAL_PORT', '8000')}"
SECRET_KEY = envsecret("SECRET_KEY") or "dev-only-insecure-key-do-not-use-in-production"
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", False)
EMAIL_BACKEND = envstr("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
LOG_FORMAT = envstr("LOG_FORMAT", "text")
LOGGING["handlers"]["console"]["formatter"] = LOG_FORMAT  # noqa: F405
WEBHOOKS_ALLOW_PRIVATE_NETWORKS = envbool("WEBHOOKS_ALLOW_PRIVATE_NETWORKS", True)  # a receiver on this laptop
