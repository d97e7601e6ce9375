"""The one beat schedule. Apps add their periodic tasks here, by task name (no imports of apps)."""

from celery.schedules import crontab  # noqa: F401  (used as apps add entries)

from portal.celery import app

app.conf.beat_schedule.update(
    {
        "worker-heartbeat-probe": {"task": "portal.tasks.heartbeat_probe", "schedule": 30.0},
    }
)
