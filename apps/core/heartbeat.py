"""The Celery worker heartbeat key: written by the worker (`portal/celery.py`), read by `/readyz`
(`portal/views.py`) and by the eval runner to tell whether the worker owning a run is still alive."""

HEARTBEAT_KEY = "portal:worker-heartbeat:{hostname}"
HEARTBEAT_PATTERN = HEARTBEAT_KEY.format(hostname="*")  # what /readyz scans for
HEARTBEAT_INTERVAL = 5.0
