"""The gateway's entry: `uvicorn portal.gateway_asgi:application --loop uvloop --http httptools` (how `make run`
and compose serve it: portal/launcher.py `gateway_command`, ADR 0134), or any other ASGI server.

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
