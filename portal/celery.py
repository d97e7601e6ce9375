"""The Celery application, its queues, the beat schedule and the worker heartbeat /readyz reads."""

import contextlib
import os
import socket

from celery import Celery, bootsteps, signals
from django.apps import apps as django_apps
from django.conf import settings

from apps.core import redis as core_redis
from apps.core.heartbeat import HEARTBEAT_INTERVAL, HEARTBEAT_KEY
from portal import queues, warmup

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = queues.QUEUES
app.conf.task_default_queue = queues.DEFAULT
app.conf.task_routes = queues.ROUTES
app.autodiscover_tasks()


def write_heartbeat(hostname: str, run_id: str | None = None) -> None:
    """The key's value is the run id (PORTAL_RUN_ID, set by `make run` for each start; "1" without one):
    /readyz of a run counts only its own run's workers, never a heartbeat a previous run left behind."""
    value = run_id if run_id is not None else (settings.PORTAL_RUN_ID or "1")
    core_redis.client(socket_timeout=2).set(HEARTBEAT_KEY.format(hostname=hostname), value,
                                            ex=settings.PORTAL_WORKER_HEARTBEAT_TTL)


class HeartbeatStep(bootsteps.StartStopStep):
    """Every few seconds the worker writes a key with a TTL; /readyz is ready while one is fresh."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        self.tref = None
        self.hostname = getattr(worker, "hostname", None) or socket.gethostname()

    def start(self, worker):
        self._beat()
        self.tref = worker.timer.call_repeatedly(HEARTBEAT_INTERVAL, self._beat, priority=10)

    def stop(self, worker):
        if self.tref:
            self.tref.cancel()
            self.tref = None

    def _beat(self):
        with contextlib.suppress(Exception):  # a missed beat must never kill the worker
            write_heartbeat(self.hostname)


app.steps["worker"].add(HeartbeatStep)


@signals.worker_init.connect
def warm_imports(**_kwargs) -> None:
    """Import once in the worker's parent what the first model call and the first scored item would import
    lazily (the OpenAI SDK, the evaluator families): prefork children inherit it, and a run's first wave no
    longer spends ~1.5 s importing in every child at once (issue #4 throughput)."""
    if not django_apps.ready:
        return
    with contextlib.suppress(Exception):  # only a warm-up: the first call imports whatever is missing
        import apps.llm.adapters.openai  # noqa: F401  # why: the warm-up itself: import now, in the parent, not per child
        from apps.evals.evaluators import kinds  # why: as above (and only once the apps are ready)

        kinds()



@signals.worker_process_init.connect
def warm_models_in_child(**_kwargs) -> None:
    """PORTAL_WARM_MODELS: each prefork child loads the embedding model before it reports up and takes a task,
    so no task (and no person waiting on one) pays the ~10 s load. Children only: see portal/warmup.py."""
    if not django_apps.ready:
        return
    if warmup.enabled():
        warmup.warm_models()

from portal.scheduled import BEAT_SCHEDULE  # noqa: E402

app.conf.beat_schedule = BEAT_SCHEDULE  # the one schedule module
