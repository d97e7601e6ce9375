"""`manage.py evals_seed`: the shared adversarial set and safety evaluators (idempotent)."""

from django.core.management.base import BaseCommand

from apps.core.request_context import acting_as
from apps.evals.seed import adversarial_seed


class Command(BaseCommand):
    help = "Create the portal's shared adversarial dataset and safety evaluators if missing."

    def handle(self, *args, **options):
        with acting_as(None):
            dataset = adversarial_seed()
        self.stdout.write(f"{dataset.name}: revision {dataset.latest_revision}")
