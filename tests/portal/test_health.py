import pytest


@pytest.mark.django_db
def test_healthz_answers_without_touching_anything(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_names_each_dependency_and_is_not_ready_without_a_worker(client, settings):
    import redis
    from django.core.cache import cache

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    cache.clear()
    response = client.get("/readyz")
    body = response.json()
    assert set(body["checks"]) == {"database", "redis", "worker"}
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["database"]["pgvector"]
    assert body["checks"]["redis"]["ok"] is True
    assert body["checks"]["worker"]["ok"] is False
    assert response.status_code == 503
