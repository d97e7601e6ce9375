"""`manage.py rollups_backfill_use_cases [--since YYYY-MM-DD]`

Once after migration costs 0014 (the use case became a rollup dimension): rebuild from the raw ledger the rollups of
every kept day whose events carry a use case, so the cost and the response cache's saving per use case cover the
days before the migration. Idempotent (re-running rebuilds the same rows); one transaction per day, so ingestion
waits only for the day being rebuilt. Days whose raw events were purged keep their rollups, without use case.
"""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from apps.costs.rollups import rollups_backfill_use_cases


class Command(BaseCommand):
    help = "Rebuild the rollups of the days whose usage events carry a use case (after migration costs 0014)."

    def add_arguments(self, parser):
        parser.add_argument("--since", default="", help="only days from this UTC date (YYYY-MM-DD); default: all kept")

    def handle(self, *args, **options):
        since = None
        if options["since"]:
            try:
                since = date.fromisoformat(options["since"])
            except ValueError:
                raise CommandError(f"--since must be a date like 2026-11-01, not {options['since']!r}.")
        days = rollups_backfill_use_cases(since, on_day=lambda d: self.stderr.write(f"rebuilt {d}"))
        self.stdout.write(f"{len(days)} day{'s' if len(days) != 1 else ''} rebuilt"
                          + (f" ({days[0]} to {days[-1]})" if days else "") + ".")
