"""PORTAL_WARM_MODELS: the embedding model loads when web and worker processes start, before they are ready,
so no person's first query pays for it; tests leave it off."""

import importlib
import threading

import pytest

from portal import warmup


@pytest.fixture
def fresh_state(monkeypatch):
    monkeypatch.setattr(warmup, "_state", {"started": False, "done": False, "error": "", "seconds": None})


def test_warm_up_is_off_in_tests_and_on_in_production_and_the_launcher():
    from pathlib import Path

    from django.conf import settings

    assert settings.PORTAL_WARM_MODELS is False and warmup.start_in_background() is None
    root = Path(__file__).resolve().parents[2]
    assert 'PORTAL_WARM_MODELS = envbool("PORTAL_WARM_MODELS", True)' in (
        root / "portal" / "settings" / "production.py").read_text()
    assert 'env.setdefault("PORTAL_WARM_MODELS", "1")' in (root / "portal" / "launcher.py").read_text()


@pytest.mark.django_db
def test_the_web_is_not_ready_until_the_model_is_loaded(client, settings, fresh_state, monkeypatch):
    settings.PORTAL_WARM_MODELS = True
    release, loaded = threading.Event(), []

    def slow_load(texts):
        release.wait(10)
        loaded.append(texts)
        return [[0.0]]

    monkeypatch.setattr("apps.llm.offline.embeddings.embed_texts", slow_load)
    thread = warmup.start_in_background()
    assert thread is not None and warmup.start_in_background() is None  # once per process
    assert client.get("/healthz").status_code == 200  # liveness does not wait
    body = client.get("/readyz").json()
    assert body["checks"]["models"] == {"ok": False, "embedding_model": "loading"} and body["status"] == "not ready"
    release.set()
    thread.join(10)
    assert loaded == [["warm-up"]]
    assert client.get("/readyz").json()["checks"]["models"] == {"ok": True, "embedding_model": "loaded"}


def test_the_wsgi_application_starts_the_warm_up(monkeypatch):
    import portal.wsgi

    calls = []
    monkeypatch.setattr(warmup, "start_in_background", lambda: calls.append("web"))
    importlib.reload(portal.wsgi)
    assert calls == ["web"]


def test_each_worker_child_warms_before_it_reports_up(settings, fresh_state, monkeypatch):
    from celery import signals

    from portal.celery import app, warm_models_in_child

    loads = []
    monkeypatch.setattr("apps.llm.offline.embeddings.embed_texts", lambda texts: loads.append(texts))
    settings.PORTAL_WARM_MODELS = False
    signals.worker_process_init.send(sender=None)
    assert loads == []
    settings.PORTAL_WARM_MODELS = True
    signals.worker_process_init.send(sender=None)
    assert loads == [["warm-up"]]
    assert warm_models_in_child in [r() for _, r in signals.worker_process_init.receivers]
    assert app.conf.worker_proc_alive_timeout >= 60  # a warming child is not killed for reporting up late
