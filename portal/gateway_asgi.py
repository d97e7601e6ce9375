"""The gateway's ASGI entry (`granian --interface asgi portal.gateway_asgi:application`, or uvicorn).

portal is the top: it sets Django up, then serves apps.gateway's application (docs/gateway.md).
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")
django.setup()

from apps.gateway.asgi import application  # noqa: E402  (after django.setup())

__all__ = ["application"]
