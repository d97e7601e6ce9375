"""The gateway's entry: `granian --interface rsgi portal.gateway_asgi:application` (how it is served, ADR 0132),
or any ASGI server (`uvicorn portal.gateway_asgi:application`): the one application answers both interfaces.

portal is the top: it sets Django up, then serves apps.gateway's application (docs/gateway.md).
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")
django.setup()

from apps.gateway.asgi import application  # noqa: E402  (after django.setup())

__all__ = ["application"]

import gc  # noqa: E402

# Everything start-up made (Django, the apps, their caches) moves out of the collector's way: a full collection no
# longer walks it, which showed as the gateway's p99 under load (ADR 0127, BENCHMARKS.md "recorder linger").
gc.freeze()
