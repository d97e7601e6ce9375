"""Beat job of experiments: a thin wrapper over the verdict notices."""

from celery import shared_task

from apps.experiments import services


@shared_task(name="apps.experiments.tasks.experiments_verdicts_task")
def experiments_verdicts_task():
    return services.experiments_verdicts_notify()
