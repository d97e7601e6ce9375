"""Beat jobs of experiments: thin wrappers over the verdict notices and the sample-ratio-mismatch check."""

from celery import shared_task

from apps.experiments import services


@shared_task(name="apps.experiments.tasks.experiments_verdicts_task")
def experiments_verdicts_task():
    return services.experiments_verdicts_notify()


@shared_task(name="apps.experiments.tasks.experiments_srm_task")
def experiments_srm_task():
    return services.experiments_srm_check()
