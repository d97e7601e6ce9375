from django.core.management.base import BaseCommand

from apps.core.demo_status import demo_loading_marker
from portal.demo import seed_demo, seed_demo_quick


class Command(BaseCommand):
    help = "Load the demo data (idempotent): people, teams, models and prices, then every area's demo."

    def add_arguments(self, parser):
        parser.add_argument("--quick", action="store_true",
                            help="Only what logging in needs (people, teams, models, prices); seconds, not minutes.")

    def handle(self, *args, quick=False, **options):
        if quick:
            seed_demo_quick()
        else:
            with demo_loading_marker():  # home and costs say "demo data is loading" meanwhile
                seed_demo()
        self.stdout.write(self.style.SUCCESS("Demo data ready." if not quick else "Demo logins ready."))
