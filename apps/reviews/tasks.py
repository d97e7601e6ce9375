"""Beat jobs of the review: thin wrappers over services (and `linking` for the material-change scan)."""

from celery import shared_task

from apps.reviews import linking, services


@shared_task(name="apps.reviews.tasks.reviews_expiry_sweep_task")
def reviews_expiry_sweep_task():
    return services.expiry_sweep()


@shared_task(name="apps.reviews.tasks.reviews_conditions_recheck_task")
def reviews_conditions_recheck_task():
    return services.conditions_recheck_all()


@shared_task(name="apps.reviews.tasks.reviews_material_change_scan_task")
def reviews_material_change_scan_task():
    return linking.material_change_scan()
