import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")
application = get_wsgi_application()

from portal import warmup  # noqa: E402 - after the application: settings are loaded

warmup.start_in_background()  # PORTAL_WARM_MODELS: load the embedding model now, not on the first query
