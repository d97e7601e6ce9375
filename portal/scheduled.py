"""The one beat schedule. Apps add their periodic tasks here, by task name (no imports of apps)."""

from celery.schedules import crontab

from portal.celery import app

app.conf.beat_schedule.update(
    {
        "worker-heartbeat-probe": {"task": "portal.tasks.heartbeat_probe", "schedule": 30.0},
        "audit-chain-verify-nightly": {
            "task": "apps.audit.tasks.audit_chain_verify_scheduled",
            "schedule": crontab(hour=3, minute=0),
        },
    }
)
