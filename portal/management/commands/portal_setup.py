import time

from django.core.management import call_command
from django.core.management.base import BaseCommand

from portal import schema
from portal.demo import seed_demo_quick


class Command(BaseCommand):
    help = ("Bring the database up to date in one process: load the schema snapshot into an empty database, "
            "apply any migration it lacks, then load the demo logins; and collect the static files (hashed, "
            "compressed) that the web server serves (what `make run` does before serving).")

    def add_arguments(self, parser):
        parser.add_argument("--no-demo", action="store_true", help="Schema only; no demo people, models or prices.")

    def handle(self, *args, no_demo=False, **options):
        started = time.monotonic()
        if schema.load_snapshot_if_fresh():
            self.stdout.write("Empty database: loaded the schema snapshot.")
        call_command("migrate", interactive=False, verbosity=0)
        if not no_demo:
            seed_demo_quick()
        call_command("collectstatic", interactive=False, verbosity=0)
        self.stdout.write(f"Database and static files ready in {time.monotonic() - started:.1f}s.")
