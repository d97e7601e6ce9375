from django.core.management.base import BaseCommand, CommandError

from portal import schema


class Command(BaseCommand):
    help = "Rewrite portal/schema_snapshot.sql.gz from the migrations (make schema), or --check that it is current."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Exit 1 if the snapshot does not match the migrations.")

    def handle(self, *args, check=False, **options):
        if check:
            if schema.snapshot_fingerprint() != schema.migrations_fingerprint():
                raise CommandError("portal/schema_snapshot.sql.gz is stale: run `make schema` and commit it.")
            self.stdout.write("Schema snapshot matches the migrations.")
            return
        path = schema.write_snapshot()
        self.stdout.write(self.style.SUCCESS(f"Wrote {path.name} (fingerprint {schema.migrations_fingerprint()[:12]})."))
