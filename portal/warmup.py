"""Load the offline embedding model when a web or worker process starts, so no person's first query pays for
it (about 10 s on two cores). On when PORTAL_WARM_MODELS is set (the launcher and production); off in tests.

Web: a background thread starts with the WSGI application, so liveness answers at once while `/readyz`
reports "not ready" until the model is loaded. Worker: each prefork child loads it in `worker_process_init`,
before it reports up and takes a task (the parent never runs torch: forking after torch's thread pool started
can hang the children).
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

log = logging.getLogger(__name__)

_state = {"started": False, "done": False, "error": "", "seconds": None}
_lock = threading.Lock()


def enabled() -> bool:
    return bool(getattr(settings, "PORTAL_WARM_MODELS", False))


def warm_models() -> None:
    """Load MiniLM and embed one text, here and now. Never raises: a cold model still loads on first use."""
    started = time.perf_counter()
    _state["started"] = True
    try:
        from apps.llm.offline.embeddings import embed_texts  # why: sentence-transformers, heavy

        embed_texts(["warm-up"])
    except ImportError:  # the `local` extra is not installed: nothing to warm
        log.info("warm-up skipped: the offline embedding model is not installed")
    except Exception as exc:  # noqa: BLE001 - a failed warm-up must not stop the process
        _state["error"] = type(exc).__name__
        log.warning("warm-up of the embedding model failed: %s", exc)
    finally:
        _state["seconds"] = round(time.perf_counter() - started, 2)
        _state["done"] = True
    log.info("embedding model warm in %.1f s", _state["seconds"])


def start_in_background() -> threading.Thread | None:
    """The web process: warm in a thread (once), so /healthz answers while /readyz waits for it."""
    if not enabled():
        return None
    with _lock:
        if _state["started"]:
            return None
        _state["started"] = True
    from apps.llm.offline.embeddings import prefer_threads  # why: lazy, as in warm_models

    prefer_threads(1)  # queries are one short text each: one model thread per web process (ADR 0044, 0045)
    thread = threading.Thread(target=warm_models, name="portal-warm-models", daemon=True)
    thread.start()
    return thread


def readiness() -> dict | None:
    """The `/readyz` check while warm-up is on: ready once the model is loaded (None when warm-up is off)."""
    if not enabled():
        return None
    check = {"ok": _state["done"] and not _state["error"], "embedding_model": "loaded" if _state["done"]
             else "loading"}
    if _state["error"]:
        check["error"] = _state["error"]
    return check
