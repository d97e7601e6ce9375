from celery import shared_task


@shared_task(name="portal.tasks.heartbeat_probe")
def heartbeat_probe() -> str:
    """A no-op the beat sends so a stuck queue shows up as a growing backlog."""
    return "ok"
